// Fetch the checkpoint and export it (torch.export -> ONNX -> simplified, checked ONNX; optional TorchScript).
// See modelExport.txt.

Object call(Map given = [:]) {
    Map cfg = stepConfig.merge('modelExport', stepConfig.stageDefaults() + [checkpoint: true], given)
    if (cfg.checkpoint) {
        stepConfig.runStage(cfg, ['checkpoint', 'fetch'])
    }
    return stepConfig.runStage(cfg, ['export'])
}
