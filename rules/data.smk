# The built-in demo dataset (VOC layout), generated deterministically; shared by every experiment.

DEMO_DATA = REGISTRY.stage("make_demo_data")


rule make_demo_data:
    output:
        manifest=f"{DEMO_ROOT}/manifest.json",
    log:
        "results/make_demo_data/make_demo_data.log",
    benchmark:
        "results/make_demo_data/make_demo_data.benchmark.tsv"
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=DEMO_DATA.mem_mb,
        runtime=DEMO_DATA.runtime,
    params:
        **{arg: config["make_demo_data"][arg] for arg in DEMO_DATA.params},
        out_dir=lambda wildcards, output: os.path.dirname(output.manifest),
        code=code_of(DEMO_DATA, config),
    shell:
        command(DEMO_DATA, via_params=("out_dir",))


# One data check per data tree and set of splits (pipeline.data_check_key), shared by every experiment
# on that data; every stage that reads the data takes its report as an input, so a data problem stops
# the run before any training.
CHECK = REGISTRY.stage("check_data")


rule check_data:
    input:
        unpack(lambda wc: {"data": data_input(check_config(wc))}),
    output:
        out_report="results/check_data/{check}/report.json",
    log:
        "results/check_data/{check}/check_data.log",
    benchmark:
        "results/check_data/{check}/check_data.benchmark.tsv"
    conda:
        "../envs/wsss.yaml"
    threads: rule_threads(CHECK)
    resources:
        mem_mb=CHECK.mem_mb,
        runtime=CHECK.runtime,
    params:
        **{
            arg: (lambda wc, arg=arg: as_argument(node_params(check_config(wc), CHECK, "")[arg]))
            for arg in CHECK.params
        },
        data_root=lambda wc: data_root(check_config(wc)),
        fingerprint=lambda wc: data_fingerprint(check_config(wc)),
        code=lambda wc: code_of(CHECK, check_config(wc)),
    shell:
        command(CHECK)


# COCO 2014 or an image folder (config `dataset: coco | folder`), written once as a VOC-layout tree that
# becomes the data root of every experiment on it (lib/data/datasets.py).
CONVERT = REGISTRY.stage("convert_dataset")


rule convert_dataset:
    input:
        sources=lambda wc: conversion_sources(CONVERTED[wc.convert]),
    output:
        manifest="results/convert_dataset/{convert}/VOC2012/manifest.json",
    log:
        "results/convert_dataset/{convert}/convert_dataset.log",
    benchmark:
        "results/convert_dataset/{convert}/convert_dataset.benchmark.tsv"
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=CONVERT.mem_mb,
        runtime=CONVERT.runtime,
    params:
        **{
            arg: (lambda wc, arg=arg: as_argument(node_params(CONVERTED[wc.convert], CONVERT, "")[arg]))
            for arg in CONVERT.params
        },
        out_dir=lambda wildcards, output: os.path.dirname(output.manifest),
        code=code_of(CONVERT, config),
    shell:
        command(CONVERT, via_params=("out_dir",))
