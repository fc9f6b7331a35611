import os


rule figures:
    input:
        finals=[f"{OUT}/pnp/{denoiser}/{method}/final.csv" for denoiser, method in PNP_RUNS],
        records=[f"{OUT}/pnp/{denoiser}/{method}/records.csv" for denoiser, method in PNP_RUNS],
        lipschitz=expand(f"{OUT}/lipschitz/{{denoiser}}.csv", denoiser=DENOISERS),
        long=[f"{OUT}/pnp-long/{denoiser}/{method}/records.csv" for denoiser, method in LONG_RUNS],
    output:
        pdf=expand(f"{OUT}/figures/{{figure}}.pdf", figure=FIGURES),
        png=[
            report(f"{OUT}/figures/{figure}.png", caption=f"../report/{figure}.rst", category="Figures", labels={"figure": figure})
            for figure in FIGURES
        ],
    log:
        f"{OUT}/logs/figures.log",
    params:
        folder=lambda wildcards, output: os.path.dirname(output.pdf[0]),
        pnp=lambda wildcards, input: [os.path.dirname(f) for f in input.finals],
        long=lambda wildcards, input: " ".join(["--long", *map(os.path.dirname, input.long)]) if input.long else "",
        root=root_arg(config),
        code=command_code_hash("figures"),
    conda:
        ENV
    shell:
        "lipbench figures --pnp {params.pnp} --lipschitz {input.lipschitz} --out {params.folder} {params.long} {params.root}"
        " > {log} 2>&1"
