"""Continual learning and testing in production (lesson 09; Huyen, 2022, ch. 9).

* `retrain`: when to retrain (schedule, drift, performance triggers), how (a fresh fit or a LightGBM
  warm start), on what (data freshness), and each challenger judged by lesson 06's protocol;
* `rollout`: shadow deployment, an A/B test on a stable hash, a canary with automatic rollback and a
  Thompson-sampling bandit, all on plain tables of flights, probabilities, outcomes and the time each
  outcome became known;
* `feedback`: a degenerate feedback loop (the desk's action hides the risk it acted on) and a
  randomised hold-out that undoes it; cold start of aircraft never seen in training.
"""
