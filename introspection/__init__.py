"""Reference implementation of Introspection-Net (Aigrain & Detyniecki, 2019).

Detecting adversarial examples and other misclassifications from the logits of a
pretrained classifier. One module per stage of the pipeline:

- :mod:`introspection.datasets` -- loading MNIST, Fashion-MNIST, CIFAR-10; OOD builders.
- :mod:`introspection.models` -- the paper's Table 1 CNN, Wide ResNets, Introspection-Net.
- :mod:`introspection.training` -- base-classifier and Introspection-Net training.
- :mod:`introspection.attacks` -- patch errors, FGSM, BIM, DeepFool.
- :mod:`introspection.detectors` -- Softmax Baseline, Trust Score, Introspection-Net.
- :mod:`introspection.splits` -- Section 3.2's train/validation/test sets.
- :mod:`introspection.metrics` -- FPR@95TPR, AUROC, AUPR-In/Out with bootstrap CIs.
- :mod:`introspection.artifacts` -- atomic, hashed, manifest-described artifacts.

Importing the package itself is cheap: TensorFlow/Keras load only with the modules
that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
