"""Compiled execution modes seen through torch.profiler: Inductor's kernels and extern calls named by theory's ops."""
