"""What every step stands on: :mod:`~pconv_lib.util.errors` (every error and its hint),
:mod:`~pconv_lib.util.arg_checks` and :mod:`~pconv_lib.util.tensor_checks` (the validators of the
public entry points), :mod:`~pconv_lib.util.files` (headers, limits, atomic writes),
:mod:`~pconv_lib.util.image_files` (the one photo reader) and :mod:`~pconv_lib.util.download`.
Nothing here imports a step module. Import from the modules."""
