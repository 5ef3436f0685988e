"""Report labelling beyond the rules: a learned (CheXbert-style) labeler and the methods that use it.

``bert_labeler``: the model (BERT + 4-class heads per observation), saved and loaded like a model;
``training``: fine-tuning on rule labels, then on hand labels; ``methods``: ``rules`` / ``bert`` /
``ensemble`` labelling of texts and JSONL files (``mmdx label``).
"""

from multimodal.labeling.methods import METHODS, label_file, label_texts

__all__ = ["METHODS", "label_file", "label_texts"]
