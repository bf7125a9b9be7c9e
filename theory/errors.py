class TheoryError(ValueError):
    """Bad input to the theory: reported to users as one line, never a traceback."""
