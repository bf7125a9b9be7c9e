"""How the report shows what analysis computed: number formatting (fmt), figures (plots, decompose_plots) and
the markdown sections that are prose rather than tables of the joined rows (explain, noise, tables, sections)."""
