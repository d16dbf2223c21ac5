"""Input and output: case files (case), units, results folders (output) and
their files (results), weather years and power maps."""
