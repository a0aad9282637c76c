"""ssgan: adversarial examples for audio classifiers with a short-time synthesis GAN.

The few abstractions (see README):
- a *victim* is any ``nn.Module`` mapping ``(batch, time)`` 16 kHz waveforms to logits;
- an *attack* is called as ``attack(model, x, y, target=None)`` and returns ``x_adv``;
- a *dataset* yields ``(waveform, label)`` with its metadata.
"""

__version__ = "0.1.0"
SAMPLE_RATE = 16_000
