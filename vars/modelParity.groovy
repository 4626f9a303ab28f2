// Compare every backend with PyTorch eager on the golden inputs, write the HTML report, publish
// the JUnit report and archive the JSON/Markdown/HTML reports even when parity fails.
// See modelParity.txt.

Object call(Map given = [:]) {
    Map cfg = stepConfig.merge('modelParity', stepConfig.stageDefaults(), given)
    int status = stepConfig.runStage(cfg, ['parity'], [], null, true)
    // The HTML page (parity tables, error plots) is written by `pytools report` from the reports.
    int report = pytools(stepConfig.pytoolsOptions(cfg) + [
        args: ['report', cfg.config, '--workdir', cfg.workdir], returnStatus: true])
    String reports = "${cfg.workdir}/reports"
    // A crash before the report exists must still fail the build with pytools' own message.
    junit(testResults: "${reports}/parity.xml", allowEmptyResults: status != 0)
    archiveArtifacts(artifacts: "${reports}/parity.json,${reports}/parity.md,${reports}/report.html",
                     allowEmptyArchive: true, fingerprint: true)
    if (status != 0) {
        error("modelParity: parity failed (pytools parity exited ${status}); see the parity test report")
    }
    if (report != 0) {
        error("modelParity: pytools report exited ${report}")
    }
    return status
}
