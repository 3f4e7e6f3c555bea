#!/usr/bin/env python3
"""Extracts one path of Meta's OpenAPI document and the components it references, unmodified.

Usage: extract.py SOURCE.yaml PATH OUT.yaml (needs PyYAML). See README.md."""
import yaml, sys, re
src, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
d = yaml.safe_load(open(src))
keep = {'paths': {path: d['paths'][path]}, 'components': {}}
todo = [keep['paths'][path]]
seen = set()
def refs(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == '$ref' and isinstance(x, str): yield x
            elif k == 'discriminator' and isinstance(x, dict):
                # A discriminator's mapping names schemas too.
                yield from (m for m in x.get('mapping', {}).values() if isinstance(m, str))
            else: yield from refs(x)
    elif isinstance(v, list):
        for x in v: yield from refs(x)
while todo:
    node = todo.pop()
    for r in refs(node):
        if r in seen: continue
        seen.add(r)
        parts = r.lstrip('#/').split('/')
        assert parts[0] == 'components', r
        target = d
        for p in parts: target = target[p]
        keep['components'].setdefault(parts[1], {})[parts[2]] = target
        todo.append(target)
doc = {'openapi': d['openapi'], 'info': {'title': 'EXTRACT (messages subset) of facebook/openapi business-messaging-api_v23.0.yaml', 'version': 'v23.0', 'description': 'Mechanical subset of https://github.com/facebook/openapi/blob/main/business-messaging-api_v23.0.yaml (MIT, see LICENSE). The path ' + path + ' plus referenced components. Not edited.'}, 'servers': d.get('servers', [{'url': 'https://graph.facebook.com'}]), **keep}
with open(out, 'w') as f:
    yaml.safe_dump(doc, f, sort_keys=False, allow_unicode=True, width=120)
print(len(seen), 'components')
