"""Small tools that know nothing of the experiment: one-line errors, atomic files, console lines,
Ctrl-C handling, SVG charts. Imports nothing from the package."""
