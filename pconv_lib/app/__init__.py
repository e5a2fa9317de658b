"""The application around the library: :mod:`~pconv_lib.app.cli` (``python -m pconv_lib``,
``pconv``), :mod:`~pconv_lib.app.doctor` (is this machine ready for the course?) and
:mod:`~pconv_lib.app.project` (the one repository URL). Import from the modules."""
