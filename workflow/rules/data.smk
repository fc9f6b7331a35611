from lipbench.workflow.rules import data_stamp


# the data files' stamp (their paths and SHA-256s) is a param: a file that changes, appears or goes
# makes the checksums run again, before any job that reads the data; fresh mtimes alone do not
rule verify_data:
    output:
        f"{OUT}/data/verified.txt",
    log:
        f"{OUT}/logs/verify_data.log",
    params:
        sources=config["data"]["sources"],
        root=root_arg(config),
        data=data_stamp(config),
        code=command_code_hash("verify"),
    conda:
        ENV
    shell:
        "lipbench verify {params.root} --only {params.sources} > {output} 2> {log}"
