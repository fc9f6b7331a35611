import os

from lipbench.workflow.rules import base_args, extra_args, finetune_args, pretrained_args, tv_args

# A rerun of a killed, cancelled or timed-out training job continues from its checkpoint.pt when the
# same configuration, code, torch and --init weights wrote it (`--resume auto`; the log says
# "resumed from step N"), else starts afresh and says why.
# Long jobs first, so that no long job starts last and runs alone on one core (`priority`; it reruns
# nothing): training and TV's tuning, which the rest waits for (2); then the fine-tunes, the Lipschitz
# evaluations and the long PnP runs (1; workflow/rules/lipschitz.smk, pnp.smk); then PnP and
# denoising (0). Without it, quick ran TV's tuning late and then TV's Lipschitz job, its longest
# evaluation (about 5 min), alone at the end.

rule train_base:
    input:
        f"{OUT}/data/verified.txt",
    output:
        f"{OUT}/models/lam0/model.pt",
    log:
        f"{OUT}/logs/train/lam0.log",
    benchmark:
        f"{OUT}/benchmarks/train/lam0.tsv"
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        args=base_args(config),
        shared=SHARED,
        code=command_code_hash("train"),
    priority: 2
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench train --out {params.folder} --resume auto {params.args} {params.shared} --quiet > {log} 2>&1"


rule finetune:
    input:
        f"{OUT}/models/lam0/model.pt",
    output:
        f"{OUT}/models/lam{{lam}}/model.pt",
    log:
        f"{OUT}/logs/train/lam{{lam}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/lam{{lam}}.tsv"
    wildcard_constraints:
        lam=alternatives([label for label in LAMBDAS if label != "0"]),
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        lam=lambda wildcards: repr(LAMBDA_VALUES[wildcards.lam]),  # the configured value, not the folder's text
        args=finetune_args(config),
        shared=SHARED,
        code=command_code_hash("train"),
    priority: 1
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench train --out {params.folder} --resume auto --lam {params.lam} --init {input} {params.args} {params.shared} --quiet"
        " > {log} 2>&1"


# the `denoisers` section: more denoisers (the certified one, a user's module:factory), from scratch
rule train_extra:
    input:
        f"{OUT}/data/verified.txt",
    output:
        f"{OUT}/models/{{extra}}/model.pt",
    log:
        f"{OUT}/logs/train/{{extra}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{extra}}.tsv"
    wildcard_constraints:
        extra=alternatives(EXTRA),
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        args=lambda wildcards: extra_args(config, wildcards.extra),
        shared=SHARED,
        code=command_code_hash("train"),
    priority: 2
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench train --out {params.folder} --resume auto {params.args} {params.shared} --quiet > {log} 2>&1"


# `denoisers` entries with weights: pretrained elsewhere, verified by SHA-256, wrapped (no training)
rule pretrained:
    input:
        weights=lambda wildcards: config["denoisers"][wildcards.pretrained]["weights"]["path"],
    output:
        f"{OUT}/models/{{pretrained}}/model.pt",
    log:
        f"{OUT}/logs/train/{{pretrained}}.log",
    wildcard_constraints:
        pretrained=alternatives(PRETRAINED),
    params:
        args=lambda wildcards: pretrained_args(config, wildcards.pretrained),
        code=command_code_hash("pretrained"),
    conda:
        ENV
    shell:
        "lipbench pretrained --out {output} {params.args} > {log} 2>&1"


# the TV baseline: its weight chosen on tuning images (config tv.dataset), never the test set
rule tune_tv:
    input:
        f"{OUT}/data/verified.txt",
    output:
        f"{OUT}/models/tv/model.pt",
        f"{OUT}/models/tv/tuning.csv",
    log:
        f"{OUT}/logs/train/tv.log",
    benchmark:
        f"{OUT}/benchmarks/train/tv.tsv"
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        args=lambda wildcards: tv_args(config),
        shared=SHARED,
        code=command_code_hash("tune-tv"),
    priority: 2
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench tune-tv --out {params.folder} {params.args} {params.shared} > {log} 2>&1"
