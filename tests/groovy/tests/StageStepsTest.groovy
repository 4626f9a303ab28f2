/** export, engine, parity and bench: exact commands, agents and reports. */
class StageStepsTest extends HarnessTest {
    void testExportFetchesTheCheckpointThenExports() {
        PipelineHarness h = harness()
        h.runOn('linux', 'modelExport', [config: 'models/weed.yaml', force: true])
        assert h.pytoolsCommands() == [
            "pytools 'checkpoint' 'fetch' 'models/weed.yaml' '--workdir' 'work/ci' '--force'",
            "pytools 'export' 'models/weed.yaml' '--workdir' 'work/ci' '--force'"]
    }

    void testExportWithoutCheckpointFetch() {
        PipelineHarness h = harness()
        h.runOn('linux', 'modelExport', [checkpoint: false, workdir: 'out'])
        assert h.pytoolsCommands() == ["pytools 'export' 'model.yaml' '--workdir' 'out'"]
    }

    void testEngineRunsInPlaceOnAJetsonAgent() {
        PipelineHarness h = harness()
        h.runOn('jetson', 'modelEngine', [:])
        assert h.callsOf('node')*.label == ['jetson']
        assert h.pytoolsCommands() == ["pytools 'engine' 'build' 'model.yaml' '--workdir' 'work/ci'"]
        assert h.callsOf('sh').every { it.node == 'jetson' }
    }

    void testEngineTakesAnAgentWithItsLabelChecksOutAndUnstashes() {
        PipelineHarness h = harness()
        h.stashes['export'] = [paths: ['work/ci/reports/export.json'] as Set]
        h.otherBuildLeft('orin-agent-1', 'f00ba47')
        h.runOn('linux', 'modelEngine', [label: 'orin', unstash: 'export'])
        assert h.callsOf('node')*.label == ['linux', 'orin']
        assert h.callsOf('checkout')*.node == ['linux', 'orin']
        assert h.callsOf('unstash').collect { [it.name, it.node] } == [['export', 'orin']]
        assert h.callsOf('sh').every { it.node == 'orin' && it.commit == h.commit }
    }

    void testEngineWithoutAnAgentAllocatesTheDefaultLabel() {
        PipelineHarness h = harness()
        h.run('modelEngine', [:])
        assert h.callsOf('node')*.label == ['jetson']
        assert h.callsOf('checkout')*.node == ['jetson']
    }

    void testALabelExpressionTheAgentSatisfiesRunsInPlace() {
        for (String expression in ['jetson && trt85', 'trt85', '(orin || jetson) && !x86', 'x86 -> jetson']) {
            PipelineHarness h = harness()
            h.runOn('jetson && trt85', 'modelEngine', [label: expression])
            assert h.callsOf('node')*.label == ['jetson && trt85']    // no second executor
        }
    }

    void testALabelExpressionTheAgentLacksTakesAnotherAgent() {
        PipelineHarness h = harness()
        h.runOn('jetson && trt84', 'modelEngine', [label: 'jetson && trt85'])
        assert h.callsOf('node')*.label == ['jetson && trt84', 'jetson && trt85']
    }

    void testAMalformedLabelExpressionIsOneClearError() {
        PipelineHarness h = harness()
        assert failureMessage(h) { h.runOn('jetson', 'modelEngine', [label: 'jetson &&']) } ==
            'label expression: expected a label, found the end'
    }

    void testParityPublishesJunitAndArchivesReports() {
        PipelineHarness h = harness()
        h.runOn('jetson', 'modelParity', [workdir: 'w'])
        assert h.pytoolsCommands() == ["pytools 'parity' 'model.yaml' '--workdir' 'w'",
                                       "pytools 'report' 'model.yaml' '--workdir' 'w'"]
        assert h.callsOf('sh').findAll { it.script.contains('/bin/pytools') }.every { it.returnStatus }
        assert h.callsOf('junit').collect { [it.testResults, it.allowEmptyResults] } == [['w/reports/parity.xml', false]]
        assert h.callsOf('archiveArtifacts')*.artifacts == ['w/reports/parity.json,w/reports/parity.md,w/reports/report.html']
    }

    void testFailedParityStillPublishesTheReportThenFails() {
        PipelineHarness h = harness()
        h.onSh("'parity'", '', 3)
        String message = failureMessage(h) { h.runOn('jetson', 'modelParity', [:]) }
        assert message == 'modelParity: parity failed (pytools parity exited 3); see the parity test report'
        assert h.stepNames().findAll { it in ['junit', 'archiveArtifacts', 'error'] } == ['junit', 'archiveArtifacts', 'error']
        assert h.callsOf('junit')[0].allowEmptyResults
    }

    void testAFailedHtmlReportFailsAfterPublishingTheRest() {
        PipelineHarness h = harness()
        h.onSh("'report'", '', 2)
        assert failureMessage(h) { h.runOn('jetson', 'modelParity', [force: true]) } == 'modelParity: pytools report exited 2'
        assert h.pytoolsCommands()[0] == "pytools 'parity' 'model.yaml' '--workdir' 'work/ci' '--force'"
        assert h.callsOf('junit').size() == 1 && h.callsOf('archiveArtifacts').size() == 1
    }

    void testBenchWithBaselineArchivesReports() {
        PipelineHarness h = harness()
        h.runOn('jetson', 'modelBench', [baseline: 'bench/baseline.json'])
        assert h.pytoolsCommands() == ["pytools 'bench' 'model.yaml' '--workdir' 'work/ci' '--baseline' 'bench/baseline.json'"]
        assert h.callsOf('archiveArtifacts')*.artifacts == ['work/ci/reports/bench.json,work/ci/reports/bench.md']
    }
}
