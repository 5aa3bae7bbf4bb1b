"""Names held out of every lexicon the recognizers use, for the evaluation corpus only.

``names.tsv`` is written by ``scripts/build_name_lexicon.py``: names of 105
countries that no recognizer list contains, with the country and region each
ranks best in, so detection can be scored on names it never saw, per origin.
"""
