# npm here cannot see the darwin/win32/linux-arm builds of msgpackr-extract (an optional native
# accelerator msgpackr falls back from), so `npm install` leaves them out of package-lock.json and
# `npm ci` then refuses the lock. Run this after every `npm install`: it adds their entries
# (optional, never installed on linux-x64). Usage: python3 .ci/lock-add-foreign-optionals.py package-lock.json
import json,sys
p=sys.argv[1]
d=json.load(open(p))
pk=d['packages']
for name,os_,cpu in [('darwin-arm64','darwin','arm64'),('darwin-x64','darwin','x64'),('linux-arm','linux','arm'),('win32-x64','win32','x64')]:
    key=f'node_modules/@msgpackr-extract/msgpackr-extract-{name}'
    if key not in pk:
        pk[key]={"version":"3.0.7","cpu":[cpu],"license":"MIT","optional":True,"os":[os_]}
d['packages']=dict(sorted(pk.items(), key=lambda kv: (kv[0]!='', kv[0])))
json.dump(d,open(p,'w'),indent=2)
open(p,'a').write('\n')
