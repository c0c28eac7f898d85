# The built-in demo dataset (VOC layout), generated deterministically.


rule make_demo_data:
    input:
        code=code("make_demo_data"),
    output:
        manifest=f"{DEMO_ROOT}/manifest.json",
    params:
        root=lambda wildcards, output: os.path.dirname(output.manifest),
        num_train=config["make_demo_data"]["num_train"],
        num_seed_eval=config["make_demo_data"]["num_seed_eval"],
        num_val=config["make_demo_data"]["num_val"],
        image_size=config["make_demo_data"]["image_size"],
        seed=config["make_demo_data"]["seed"],
    log:
        "results/make_demo_data/make_demo_data.log",
    benchmark:
        "results/make_demo_data/make_demo_data.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages make_demo_data --out-dir {params.root} --num-train {params.num_train} --num-seed-eval {params.num_seed_eval} --num-val {params.num_val} --image-size {params.image_size} --seed {params.seed} > {log} 2>&1"
