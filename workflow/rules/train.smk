import os

from lipbench.workflow import base_args, finetune_args


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
        code=code_hash("training.py", "lipschitz", *COMMON_CODE),
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench train --out {params.folder} --lam 0 {params.args} > {log} 2>&1"


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
        lam=r"(?!0$)[0-9.e+-]+",
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        args=finetune_args(config),
        code=code_hash("training.py", "lipschitz", *COMMON_CODE),
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench train --out {params.folder} --lam {wildcards.lam} --init {input} {params.args} > {log} 2>&1"
