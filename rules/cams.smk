# Classifier training, CAM extraction and the CAM threshold sweep.


rule train_classifier:
    input:
        data=data_input,
        code=code("train_classifier"),
    output:
        model=f"{RESULTS}/train_classifier/model.pt",
        info=f"{RESULTS}/train_classifier/model.json",
    params:
        data_root=data_root,
        split=setting("splits", "classifier"),
        args=training_args("train_classifier"),
        method=classifier_method_args,
        seed=setting("seed"),
        device=device,
    log:
        f"{LOGS}/train_classifier.log",
    benchmark:
        f"{BENCH}/train_classifier.tsv"
    threads: heavy_threads()
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=gpus,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages train_classifier --data-root {params.data_root} --split {params.split} --out-model {output.model} {params.args} {params.method} --seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"


rule make_cams:
    input:
        data=data_input,
        model=artifact("train_classifier", "model.pt"),
        code=code("make_cams"),
    output:
        cams=directory(f"{RESULTS}/make_cams/cams"),
    params:
        data_root=data_root,
        splits=lambda wc: sorted({cfg(wc)["splits"]["seeds"], cfg(wc)["splits"]["segmentation"]}),
        scales=setting("make_cams", "scales"),
        flip=lambda wc: flag("flip", cfg(wc)["make_cams"]["flip"]),
        precision=setting("make_cams", "precision"),
        cam_type=setting("make_cams", "cam_type"),
        gradcam_layer=setting("make_cams", "gradcam_layer"),
        device=device,
    log:
        f"{LOGS}/make_cams.log",
    benchmark:
        f"{BENCH}/make_cams.tsv"
    threads: heavy_threads()
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=gpus,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages make_cams --model {input.model} --data-root {params.data_root} --splits {params.splits} --out-dir {output.cams} --scales {params.scales} {params.flip} --precision {params.precision} --cam-type {params.cam_type} --gradcam-layer {params.gradcam_layer} --device {params.device} --threads {threads} > {log} 2>&1"


rule train_erasing:
    input:
        data=data_input,
        classifier=artifact("train_classifier", "model.pt"),
        info=artifact("train_classifier", "model.json"),
        code=code("train_erasing"),
    output:
        cams=directory(f"{RESULTS}/train_erasing/cams"),
        report=f"{RESULTS}/train_erasing/steps.json",
    params:
        data_root=data_root,
        split=setting("splits", "classifier"),
        cam_splits=lambda wc: sorted({cfg(wc)["splits"]["seeds"], cfg(wc)["splits"]["segmentation"]}),
        steps=setting("adversarial_erasing", "steps"),
        delta=setting("adversarial_erasing", "delta"),
        map_floor=setting("adversarial_erasing", "map_floor"),
        scales=setting("make_cams", "scales"),
        flip=lambda wc: flag("flip", cfg(wc)["make_cams"]["flip"]),
        precision=setting("make_cams", "precision"),
        seed=setting("seed"),
        device=device,
    log:
        f"{LOGS}/train_erasing.log",
    benchmark:
        f"{BENCH}/train_erasing.tsv"
    threads: heavy_threads()
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=gpus,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages train_erasing --classifier {input.classifier} --data-root {params.data_root} --split {params.split} --cam-splits {params.cam_splits} --out-dir {output.cams} --out-report {output.report} --steps {params.steps} --delta {params.delta} --map-floor {params.map_floor} --scales {params.scales} {params.flip} --precision {params.precision} --seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"


rule eval_cams:
    input:
        data=data_input,
        cams=cam_folder,
        code=code("eval_cams"),
    output:
        sweep=f"{RESULTS}/eval_cams/{{source}}/sweep.csv",
        best=f"{RESULTS}/eval_cams/{{source}}/best.json",
        per_class=f"{RESULTS}/eval_cams/{{source}}/per_class.csv",
        plot=f"{RESULTS}/eval_cams/{{source}}/sweep.png",
    params:
        data_root=data_root,
        split=setting("splits", "seeds"),
        thresholds=setting("eval_cams", "thresholds"),
        mask_folder=mask_folder_arg,
    log:
        f"{LOGS}/eval_cams_{{source}}.log",
    benchmark:
        f"{BENCH}/eval_cams_{{source}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages eval_cams --cams {input.cams} --data-root {params.data_root} --split {params.split} --out-csv {output.sweep} --out-best {output.best} --out-per-class {output.per_class} --out-plot {output.plot} --thresholds {params.thresholds} {params.mask_folder} > {log} 2>&1"
