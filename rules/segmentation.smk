# DeepLab training on pseudo-masks, prediction and scoring on val.


rule train_segmentation:
    input:
        data=data_input,
        masks=training_masks,
        code=code("train_segmentation"),
    output:
        model=f"{RESULTS}/train_segmentation/{{refinement}}/model.pt",
    params:
        data_root=data_root,
        split=setting("splits", "segmentation"),
        masks=lambda wc, input: "" if wc.refinement == "gt" else f"--masks {input.masks}",
        mask_folder=lambda wc: mask_folder_arg(wc) if wc.refinement == "gt" else "",
        head=setting("train_segmentation", "head"),
        head_width=setting("train_segmentation", "head_width"),
        args=training_args("train_segmentation"),
        seed=setting("seed"),
        device=device,
    log:
        f"{LOGS}/train_segmentation_{{refinement}}.log",
    benchmark:
        f"{BENCH}/train_segmentation_{{refinement}}.tsv"
    threads: heavy_threads()
    resources:
        mem_mb=12000,
        runtime=1440,
        gpu=gpus,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages train_segmentation --data-root {params.data_root} --split {params.split} {params.masks} {params.mask_folder} --out-model {output.model} --head {params.head} --head-width {params.head_width} {params.args} --seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"


rule predict_segmentation:
    input:
        data=data_input,
        model=artifact("train_segmentation", "{refinement}/model.pt", "{refinement}"),
        code=code("predict_segmentation"),
    output:
        masks=directory(f"{RESULTS}/predict_segmentation/{{refinement}}/masks"),
    params:
        data_root=data_root,
        split=setting("splits", "val"),
        scales=setting("predict_segmentation", "scales"),
        flip=lambda wc: flag("flip", cfg(wc)["predict_segmentation"]["flip"]),
        crf=lambda wc: flag("crf", cfg(wc)["predict_segmentation"]["crf"]),
        precision=setting("predict_segmentation", "precision"),
        device=device,
    log:
        f"{LOGS}/predict_segmentation_{{refinement}}.log",
    benchmark:
        f"{BENCH}/predict_segmentation_{{refinement}}.tsv"
    threads: heavy_threads()
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=gpus,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages predict_segmentation --model {input.model} --data-root {params.data_root} --split {params.split} --out-dir {output.masks} --scales {params.scales} {params.flip} {params.crf} --precision {params.precision} --device {params.device} --threads {threads} > {log} 2>&1"


rule eval_segmentation:
    input:
        data=data_input,
        masks=artifact("predict_segmentation", "{refinement}/masks", "{refinement}"),
        code=code("eval_segmentation"),
    output:
        metrics=f"{RESULTS}/eval_segmentation/{{refinement}}/metrics.json",
        per_class=f"{RESULTS}/eval_segmentation/{{refinement}}/per_class.csv",
    params:
        data_root=data_root,
        split=setting("splits", "val"),
        mask_folder=mask_folder_arg,
    log:
        f"{LOGS}/eval_segmentation_{{refinement}}.log",
    benchmark:
        f"{BENCH}/eval_segmentation_{{refinement}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages eval_segmentation --masks {input.masks} --data-root {params.data_root} --split {params.split} --out-json {output.metrics} --out-csv {output.per_class} {params.mask_folder} > {log} 2>&1"
