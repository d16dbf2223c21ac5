"""aidc-thermo application: case files, physics models, the ``thermo`` command
and results folders. The numerical kernels live in the separate ``kernels``
package."""

__version__ = "0.1.0"
