"""Reference implementation of Introspection-Net (Aigrain & Detyniecki, 2019).

Detects adversarial examples and other misclassifications from the logits of a
pretrained classifier. Modules, in pipeline order: ``datasets``, ``models``, ``training``,
``attacks`` (``_cleverhans``: CW-L2), ``splits`` (Section 3.2), ``detectors``, ``metrics``;
the stages, one module each, run by ``runner``, cached as ``artifacts``, set by ``config``:
``classifier``, ``generation``, ``pipeline`` (Introspection-Net, Table 2, all stages lazily);
beyond the paper ``more_detectors``, ``unseen``, ``seeds``, ``adaptive``, ``protocol``;
``paper`` (its reported numbers), ``analysis``, ``plots``, ``hardware``;
``build``: ``python -m introspection build``.
TensorFlow/Keras load only with the modules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
