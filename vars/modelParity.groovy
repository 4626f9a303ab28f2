// Compare every backend with PyTorch eager on the golden inputs; publish the JUnit report and
// archive the JSON/Markdown/HTML reports even when parity fails. See modelParity.txt.

Object call(Map given = [:]) {
    Map cfg = stepConfig.merge('modelParity', stepConfig.stageDefaults(), given)
    int status = stepConfig.runStage(cfg, ['parity'], [], null, true)
    String reports = "${cfg.workdir}/reports"
    // A crash before the report exists must still fail the build with pytools' own message.
    junit(testResults: "${reports}/parity.xml", allowEmptyResults: status != 0)
    archiveArtifacts(artifacts: ['json', 'md', 'html'].collect { ext -> "${reports}/parity.${ext}" }.join(','),
                     allowEmptyArchive: true, fingerprint: true)
    if (status != 0) {
        error("modelParity: parity failed (pytools parity exited ${status}); see the parity test report")
    }
    return status
}
