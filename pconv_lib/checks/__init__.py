"""Self-checks for the exercises: run the learner's function against the library on seeded
inputs and explain the first mismatch in plain words.

One module per step, in course order (``step1_masks`` ... ``step5_tiling``); what they share
(calling the learner's function, the contract checks, the messages) is in ``_common``. The
wrong answers each check recognises are data at the top of its module: a list of recomputed
mistakes, each with the message that explains it.

Every ``check_*`` function:

- verifies the contract first: a torch tensor where the task asks for one (not NumPy), the
  dtype and device the task states, the inputs left unchanged, the task's numeric edge cases
  (a float16 mask for the division guard of exercise 02), and only then the values;
- prints a line starting with a check mark and returns True when the learner's code works;
- prints "not implemented yet" and returns False when it raises ``NotImplementedError``
  (so the following cells of an exercise notebook still run);
- compares with the library over a seeded family of inputs that covers the edges (holes on every
  border and on two opposite borders at once, zero and maximal overlap, odd and non-square sizes,
  the real objects the library passes), and compares gradients wherever training differentiates
  through the function ("no gradient flows" for a result cut from the graph);
- raises :class:`ExerciseCheckError` otherwise, with one message: the cause when it is confirmed
  (the suspected mistake, recomputed, gives the learner's result, or reproduces the learner's
  crash) and no other confirmed cause fits, else the first mismatch with got and expected in
  every digit. A crash names the learner's function, its arguments and the whole error. A
  learner's wrong type or shape never crashes a check.

Library modules are imported inside each check so that importing this package stays cheap.
"""

from pconv_lib.checks._common import PASS, TODO, ExerciseCheckError, compare_arrays
from pconv_lib.checks.step1_masks import (
    check_circle_drawer,
    check_hole_ratio,
    check_hole_ratio_bucket,
    check_stroke_drawer,
)
from pconv_lib.checks.step2_partial_conv import check_mask_update, check_partial_conv_forward
from pconv_lib.checks.step3_unet import check_concat_skip, check_decoder_block
from pconv_lib.checks.step4_losses import check_gram_matrix, check_total_loss, check_total_variation_loss
from pconv_lib.checks.step5_tiling import check_blend_window, check_tile_grid

__all__ = [
    "PASS",
    "TODO",
    "ExerciseCheckError",
    "compare_arrays",
    "check_hole_ratio",
    "check_hole_ratio_bucket",
    "check_stroke_drawer",
    "check_circle_drawer",
    "check_mask_update",
    "check_partial_conv_forward",
    "check_concat_skip",
    "check_decoder_block",
    "check_gram_matrix",
    "check_total_variation_loss",
    "check_total_loss",
    "check_tile_grid",
    "check_blend_window",
]
