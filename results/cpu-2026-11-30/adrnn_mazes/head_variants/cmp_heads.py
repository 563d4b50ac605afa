"""compare() with several learned heads side by side (one shadow pass).
   python cmp_heads.py FAMILY SIZES N OUT.json"""
import sys, json, torch
from convrnn.checkpoint import load_model
from convrnn.evaluate import compare, default_step_cap
from convrnn.halting import AnswerDynamics, StableOutput
from convrnn.layers import DynamicsHaltingHead
from convrnn.tasks import get_task
torch.set_num_threads(1)
fam, sizes, n, out = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3]), sys.argv[4]
model = load_model("/tmp/mz/ta").eval()
pol = {"stable": StableOutput(5)}
import os
names = os.environ.get("HEADS", "ce,err,mix").split(",")
for name in names:
    h = DynamicsHaltingHead(); h.load_state_dict(torch.load(f"/tmp/mz/heads/{name}.pt")); h.eval()
    pol[name] = AnswerDynamics(h)
task = get_task("mazes", family=fam)
caps = {s: default_step_cap(task, s, 30) for s in sizes}
res = compare(model, task, sizes, n, caps, pol, batch_size=n, progress=False)
res["family"] = fam
json.dump(res, open(out, "w"), indent=1)
for k, v in res["levels"].items():
    print(f"{fam} {k}: best fixed {100*v['best_fixed_accuracy']:.1f}% @ {v['best_fixed_steps']}")
    for p, r in v["policies"].items():
        print(f"   {p:7s} {100*r['accuracy']:5.1f}% mean {r['mean_steps']:6.1f} match {r['fixed_steps_to_match']} "
              f"compute {r['compute_vs_fixed'] if r['compute_vs_fixed'] is None else round(100*r['compute_vs_fixed'])}% cap {r['hit_cap']}")
print("spearman level", res["spearman_steps_vs_level"]); print("spearman len", res.get("spearman_steps_vs_sample_difficulty"))
