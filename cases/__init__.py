"""The bundled example cases and their data files, installed as ``aidc_thermo.cases``;
``thermo examples DIR`` copies them."""
