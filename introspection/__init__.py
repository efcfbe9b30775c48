"""Reference implementation of Introspection-Net (Aigrain & Detyniecki, 2019).

Detecting adversarial examples and other misclassifications from the logits of a
pretrained classifier. One module per stage of the pipeline:

- :mod:`introspection.datasets` -- loading MNIST, Fashion-MNIST, CIFAR-10; OOD builders.
- :mod:`introspection.models` -- the paper's Table 1 CNN, Wide ResNets, Introspection-Net.
- :mod:`introspection.training` -- base-classifier and Introspection-Net training.
- :mod:`introspection.attacks` -- patch errors, FGSM, BIM, DeepFool, CW-L2.
- :mod:`introspection._cleverhans` -- cleverhans 4's CW-L2, adapted (MIT licence).
- :mod:`introspection.detectors` -- Softmax Baseline, Trust Score, Introspection-Net.
- :mod:`introspection.splits` -- Section 3.2's train/validation/test sets.
- :mod:`introspection.metrics` -- FPR@95TPR, AUROC, AUPR-In/Out with bootstrap CIs.
- :mod:`introspection.artifacts` -- atomic, hashed, manifest-described artifacts.
- :mod:`introspection.config` -- the experiments, the profiles and every parameter.
- :mod:`introspection.paper` -- every number the paper reports (Tables 1 and 2, Sections 2.3, 3.3).
- :mod:`introspection.hardware` -- the CPU's instruction set; the training arithmetic.
- :mod:`introspection.pipeline` -- the paper's stages, each cached as artifacts.
- :mod:`introspection.analysis` -- logit statistics, the comparison with the paper.
- :mod:`introspection.plots` -- every figure of the book.
- :mod:`introspection.beyond`, :mod:`introspection.adaptive` -- the stages beyond the
  paper: more detectors, unseen attacks, seeds, adaptive attacks.
- :mod:`introspection.protocol` -- the protocol study of Table 2 (chapter 12).
- :mod:`introspection.build` -- ``python -m introspection build``: the book.

Importing the package itself is cheap: TensorFlow/Keras load only with the modules
that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
