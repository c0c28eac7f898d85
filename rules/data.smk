# The built-in demo dataset (VOC layout), generated deterministically; shared by every experiment.

DEMO_DATA = REGISTRY.stage("make_demo_data")


rule make_demo_data:
    input:
        code=code_of(DEMO_DATA, config),
    output:
        manifest=f"{DEMO_ROOT}/manifest.json",
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.manifest),
        **{arg: config["make_demo_data"][arg] for arg in DEMO_DATA.params},
    log:
        "results/make_demo_data/make_demo_data.log",
    benchmark:
        "results/make_demo_data/make_demo_data.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=DEMO_DATA.mem_mb,
        runtime=DEMO_DATA.runtime,
    conda:
        "../envs/wsss.yaml"
    shell:
        command(DEMO_DATA).replace("{output.out_dir:q}", "{params.out_dir:q}")
