"""The model card (``weights/upshade_X.md``) of a shipped run, from the info dict ``train.ship_run`` writes
beside it as ``upshade_X.json``: text only, no torch."""

from __future__ import annotations


def _hours(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{seconds / 60:.1f} min"


def selection_text(info: dict) -> str:
    """What chose the shipped epoch, for a card: one PSNR, or a weighted mix of them and its score."""
    mix = info["train_config"].get("select_mix") or {}
    b = info["best"]
    if not mix:
        return f"{b[info['select_on'] + '_psnr']:.3f} dB"
    terms = " + ".join(f"{w:g} x {k}" for k, w in mix.items())
    return f"weighted mean of Y-PSNRs ({terms}) = {b.get('select_score', float('nan')):.3f} dB"


def model_card(info: dict, name: str) -> str:
    c, t, b = info["config"], info["train_config"], info["best"]
    vals = ", ".join(f"{k[:-5]} {v:.3f} dB / SSIM {b[k[:-5] + '_ssim']:.4f}" for k, v in b.items() if k.endswith("_psnr"))
    tests = ", ".join(f"{k[:-5]} {v:.3f} dB / SSIM {info['test'][k[:-5] + '_ssim']:.4f}"
                      for k, v in info["test"].items() if k.endswith("_psnr"))
    status = (
        f"finished: {info['epochs_done']} of {info['epochs_planned']} epochs"
        if info["finished"]
        else f"STILL TRAINING when shipped: best of {info['epochs_done']} of {info['epochs_planned']} planned epochs"
    )
    sets = ", ".join(f"{k} (weight {v})" for k, v in t["train_sets"].items())
    init = ""
    for depth, i in enumerate(info.get("init", [])):
        it = i.get("train_config") or {}
        lead = "- initialised from" if depth == 0 else "  " * depth + "- which started from"
        init += (
            f"{lead} `{i['path']}`: epoch {i['epoch']} of a run with data {', '.join(it.get('train_sets') or [])}, "
            f"loss {it.get('loss')}, lr {it.get('lr')}, {it.get('schedule')} over {it.get('epochs')} planned epochs "
            f"of {it.get('steps_per_epoch')} steps\n"
        )
    lr_how = _lr_how(t)
    expand = (
        f"- trained over-parameterised: every conv as a k x k conv to {t['expand']} channels then a 1x1 back, "
        "collapsed exactly into the shipped single convs\n" if t.get("expand") else ""
    )
    if init:
        init += f"- every config of that chain: `init[].train_config` in `{name}.json`\n"
    return f"""# {name}: upshade {info['size']} x2 luma model

| | |
|---|---|
| architecture | {c['blocks']} blocks of 3x3 conv ({c['width']} ch) + CReLU, all block outputs concatenated, final {c['final_kernel']}x{c['final_kernel']} conv, {c['upscale']}, + {c['residual']} x2 of the input luma |
| parameters | {info['params']:,} |
| FLOPs per output pixel | {info['flops_per_output_pixel']:,.0f} (2 x multiply-adds) |
| input / output | full-range BT.601 luma in 0..1 (what the host's LUMA hook sees), x2 |
| status | {status} |
| checkpoint chosen on | {'validation ' + selection_text(info) if t.get('select_mix') else info['select_on'] + ' Y-PSNR'}, epoch {b['epoch']} |
| training wall time | {_hours(info.get('wall_seconds', 0.0))} to the chosen epoch, all runs of the chain (on {', '.join(info.get('devices') or ['cpu'])}) |

## Scores (x2 protocol of shared/data/README.md: MATLAB-bicubic LR, Y of BT.601, 2 px shaved; PyTorch model)

- validation (chose the checkpoint): {vals}
- test, reported only (never used to choose anything): {tests}

Bicubic under the same protocol: Set5 33.68 dB, Set14 30.33 dB. The exported shader's numbers come from `upshade eval`.

## Training

- data: {sets}; extra downscaled copies at scales {t['train_scales']}; random {t['patch']}x{t['patch']} HR crops with
  flips/rotations, {lr_how} (uint8-rounded); SYNLA-1024's last 128 files by name are validation only
{expand}- loss {t['loss']}; Adam lr {t['lr']:g}, betas {tuple(t['betas'])}; schedule {t['schedule']}
  (warmup {t['warmup_epochs']} epochs, floor {t['min_lr']:g}); batch {t['batch']}; {t['steps_per_epoch'] or 'one crop per image'} steps per epoch; seed {t['seed']}
{init}- full training config: `{name}.json` (train_config); loss curves: `{name}.png`

Reproduce (a CUDA GPU is used when present; on 2 CPU cores use one thread per run):

```sh
upshade train --config CONFIG.json --out runs/{info['size']} --threads 1      # CONFIG.json = train_config above
upshade train --config CONFIG.json --out runs/{info['size']} --threads 1 --resume   # continue an interrupted run
upshade train --out runs/{info['size']} --ship weights/{name}                   # refresh these files
```
"""


def _lr_how(t: dict) -> str:
    """How the training pairs' LR was made, in the card's words."""
    if t.get("pairs") == "bank":
        mix = ", ".join(f"{k} {v:g}" for k, v in (t.get("bank_mix") or {}).items())
        return (f"LR cut from cached banks of degraded frames (tools/bank.py: downscalers, H.264/HEVC clips, "
                f"clean protocol LR), sampled by bank_mix ({mix})")
    if t.get("pairs") == "image":
        return "LR cut from the protocol's downscale of the whole image"
    return "LR made per crop by the protocol's downscale"
