"""Reference implementation of Introspection-Net (Aigrain & Detyniecki, 2019).

Detects adversarial examples and other misclassifications from the logits of a
pretrained classifier. Modules, in pipeline order: ``datasets``, ``models``, ``training``,
``attacks`` (``_cleverhans``: CW-L2), ``splits`` (Section 3.2), ``detectors``, ``metrics``;
``pipeline`` runs the paper's stages, cached as ``artifacts`` and set by ``config``;
``paper`` (its reported numbers), ``analysis``, ``plots``, ``hardware``; the stages beyond
the paper: ``more_detectors``, ``unseen``, ``seeds``, ``adaptive``, ``protocol`` (Table 2);
``build``: ``python -m introspection build``.
TensorFlow/Keras load only with the modules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
