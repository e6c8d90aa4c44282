"""Parses a Prometheus text exposition (stdin) with the reference Python client's
parser and prints the families as JSON for the TypeScript tests.

Values that JSON cannot hold (NaN, +Inf, -Inf) are printed as strings.
"""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def value(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return v


families = []
for family in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": family.name,
        "type": family.type,
        "help": family.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": value(s.value)} for s in family.samples],
    })
json.dump(families, sys.stdout)
