"""ssgan: adversarial examples for audio classifiers with a short-time synthesis GAN.

The few abstractions (see README):
- a *victim* is any ``nn.Module`` mapping ``(batch, time)`` 16 kHz waveforms to logits;
- an *attack* is called as ``attack(model, x, y, target=None)`` and returns ``x_adv``;
- a *dataset* yields ``(waveform, label)`` with its metadata.
"""

__version__ = "0.1.0"
SAMPLE_RATE = 16_000

# Before any tensor exists: training and attacks otherwise spend a third of their CPU time
# re-faulting pages that glibc returned to the kernel (ssgan.memory; SSGAN_MALLOC=system: off).
from ssgan.memory import keep_freed_memory as _keep_freed_memory  # noqa: E402

_keep_freed_memory()
