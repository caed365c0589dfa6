# Run on a MicroPython board by `mpremote exec` (boardnet.link.micropython.probe): prints one
# line, BOARDNET-PROBE and a JSON object with what deploy needs to know about the board.
# 1.0 + 2**-30 is 1.0 in float32 (24-bit mantissa) and not in float64.
import gc
import os
import sys

try:
    import json
except ImportError:
    import ujson as json
def _sha(n):
    try:
        import binascii
        import hashlib
    except ImportError:
        return ''
    h = hashlib.sha256()
    with open(n, 'rb') as f:
        while True:
            b = f.read(512)
            if not b:
                break
            h.update(b)
    return binascii.hexlify(h.digest()).decode()
r = {}
i = sys.implementation
r['version'] = '.'.join(str(v) for v in i.version[:3])
r['mpy'] = getattr(i, '_mpy', None)
r['machine'] = getattr(i, '_machine', '')
r['platform'] = sys.platform
r['double'] = 1.0 + 2.0 ** -30 != 1.0
gc.collect()
r['mem_free'] = gc.mem_free()
r['mem_alloc'] = gc.mem_alloc()
try:
    s = os.statvfs('/')
    r['fs_block'] = s[1] or s[0]
    r['fs_free'] = (s[1] or s[0]) * s[4]
    r['fs_total'] = (s[1] or s[0]) * s[2]
except Exception:
    pass
files = {}
for n in os.listdir():
    if n.startswith('boardnet_') or n.startswith('main.py') or n == 'boot.py':
        try:
            files[n] = {'size': os.stat(n)[6], 'sha256': _sha(n)}
        except OSError:
            pass
r['files'] = files
fp = None
try:
    with open('boardnet_model.py') as f:
        for line in f:
            if line.startswith('FINGERPRINT'):
                fp = line.split('=', 1)[1].strip().strip('"').strip("'")
                break
except OSError:
    if 'boardnet_model.mpy' in files:
        try:
            import boardnet_model
            fp = boardnet_model.FINGERPRINT
        except Exception:
            pass
r['fingerprint'] = fp
print('BOARDNET-PROBE ' + json.dumps(r))
