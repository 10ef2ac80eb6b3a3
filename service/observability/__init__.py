"""What an operator watches: Prometheus metrics and log lines, both free of content (docs/metrics.md).

Every label value comes from a fixed set written in this package (route templates, outcome codes, task
names, limit scopes, channels): never a case id, a receipt, an address or a word a person typed.
"""
