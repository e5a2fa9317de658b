"""pconv_lib: image inpainting with partial convolutions (Liu et al., arXiv 1804.07723).

The library built step by step by the pconv-course notebooks:

1. :mod:`pconv_lib.masks` - random irregular masks (1 = valid pixel, 0 = hole)
2. :mod:`pconv_lib.layers` - the partial-convolution layer
3. :mod:`pconv_lib.model` - the PConv UNet
4. :mod:`pconv_lib.losses`, :mod:`pconv_lib.data`, :mod:`pconv_lib.train`,
   :mod:`pconv_lib.evaluate` - loss, data and training (:mod:`pconv_lib.predict`: pad, run, crop,
   shared with step 5)
5. :mod:`pconv_lib.tiling`, :mod:`pconv_lib.widgets` - any image size (tiles; multi-scale for
   large holes), masks drawn by hand

Submodules are imported on demand (``from pconv_lib import masks``) so that importing the
package stays cheap, and importing it changes nothing in the process (no torch settings, no
import hooks, no module hooks, no threads). The CPU thread policy is an explicit call,
:func:`pconv_lib.runtime.apply_thread_policy` (threads = the CPUs this process may use, fewer while
other programs keep cores busy; ``PCONV_THREADS=N`` fixes the count): the notebooks' setup cell and
the command line make it.
"""

__version__ = "0.1.0"
