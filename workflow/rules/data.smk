from lipbench.workflow.rules import data_files


# the data files are its inputs: a file that changes (its mtime), appears or moves to another data
# root makes the checksums run again, before any job that reads the data
rule verify_data:
    input:
        data_files(config),
    output:
        f"{OUT}/data/verified.txt",
    log:
        f"{OUT}/logs/verify_data.log",
    params:
        sources=config["data"]["sources"],
        root=root_arg(config),
        code=command_code_hash("verify"),
    conda:
        ENV
    shell:
        "lipbench verify {params.root} --only {params.sources} > {output} 2> {log}"
