"""Monitoring (lesson 08): replay and natural labels, drift statistics, alerts and dashboards.

`replay` plays Sep–Dec 2013 through the scoring core into `prediction_log`; `labels` says when each
outcome becomes known and joins it without looking ahead; `drift` computes PSI, KS and chi-squared
per feature; `alerts` turns them into alerts with thresholds chosen on reference months;
`dashboards` draws what an on-call engineer looks at.
"""
