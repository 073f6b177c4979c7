"""The human side of the flight-delay model (Huyen, 2022, ch. 11): what the desk can rely on.

* `consistency`: how often the advice for one flight flips between 3 h, 2 h and 1 h before departure;
* `fallback`: failing smoothly to lesson 01's dispatcher rule when the model is down or unsure, priced;
* `fairness`: false-alarm and miss rates per carrier and airport with confidence intervals;
* `explain`: per-flight contributions from LightGBM's own `pred_contrib` and a global view;
* `modelcard`: a model card written into the registered version's description and tags.

Every function takes a fitted model (or its probabilities) and feature rows, as `mlsys.evaluate`
does, so the notebook, the tests and the service can call the same code.
"""
