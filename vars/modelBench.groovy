// Benchmark every backend (latency percentiles, throughput) and archive the reports.
// See modelBench.txt.

Object call(Map given = [:]) {
    Map cfg = stepConfig.merge('modelBench', stepConfig.stageDefaults() + [baseline: null], given)
    List extra = cfg.baseline ? ['--baseline', cfg.baseline] : []
    Object result = stepConfig.runStage(cfg, ['bench'], extra)
    String reports = "${cfg.workdir}/reports"
    archiveArtifacts(artifacts: "${reports}/bench.json,${reports}/bench.md", fingerprint: true)
    return result
}
