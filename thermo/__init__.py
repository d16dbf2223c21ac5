"""aidc-thermo application (import name ``aidc_thermo``, folder ``thermo/``): case
files, physics models, the ``thermo`` command and results folders. The numerical
kernels are ``aidc_thermo.kernels`` (folder ``kernels/``), which never imports
the application."""

__version__ = "0.1.0"
