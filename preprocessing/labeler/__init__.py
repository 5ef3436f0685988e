"""Building blocks of the rule-based report labeler (:mod:`preprocessing.report_labeler`).

``lexicon`` holds the mention patterns and which observation each concept names in each vocabulary,
``context`` the sentence splitting and NegEx-style negation/uncertainty, ``zones`` the location
phrases and their mapping onto :data:`preprocessing.vocab.ZONES`.
"""
