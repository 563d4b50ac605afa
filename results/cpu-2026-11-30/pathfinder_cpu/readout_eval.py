import json, time, torch
from convrnn.checkpoint import load_model
from convrnn.tasks import get_task
from convrnn.tasks.pathfinder_task import decide, fit_label_readout, final_features
torch.set_num_threads(1)
t0 = time.perf_counter()
model = load_model("results/cpu-2026-11-30/pathfinder_cpu").eval()
task = get_task("pathfinder", preset="lra32")
xt, yt = task.eval_data(14, 4000, 777)
head = fit_label_readout(model, xt, yt, 20, epochs=20)
print("fit", round(time.perf_counter() - t0), "s", flush=True)
res = {}
for L in (9, 14, 18, 21, 24):
    x, y = task.eval_data(L, 500, 12345)
    row = {"canvas": task.canvas(L)}
    for steps in (20, 30):
        with torch.no_grad():
            out = torch.cat([model(x[i:i+250], steps=steps).output for i in range(0, 500, 250)])
        f = final_features(model, x, steps)
        with torch.no_grad():
            row[f"decide@{steps}"] = (decide(out) == y).float().mean().item()
            row[f"head@{steps}"] = (head(f).argmax(1) == y).float().mean().item()
    res[L] = row
    print(L, row, flush=True)
json.dump(res, open("results/cpu-2026-11-30/pathfinder_cpu/readout_eval.json", "w"), indent=1)
