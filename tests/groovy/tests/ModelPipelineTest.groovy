/** The declarative template: merge-request vs release builds, agents, approvals, description. */
class ModelPipelineTest extends HarnessTest {
    static final String MANIFEST = '{"name": "weed-detector", "version": "%s", "platform": "trt8.5-sm72-l4t35.3.1"}'
    static final String PLAN = '{"waves": [{"name": "canary", "robots": ["robot-01"]}, ' +
        '{"name": "100%", "robots": ["robot-02", "robot-03"]}]}'

    PipelineHarness pipelineHarness(Map environment, String version) {
        PipelineHarness h = harness()
        h.env.putAll(environment)
        h.files['work/ci/package/manifest.json'] = String.format(MANIFEST, version)
        h.onSh("'release' 'summary'", "weed-detector ${version} (trt8.5-sm72-l4t35.3.1): parity PASS\n")
        h.onSh("'--dry-run' '--json'", PLAN).onSh("'--resume'", '', 0).onSh("'--approval' 'external'", '', 4)
        h.credential('artifactory', [kind: 'usernamePassword', username: 'ci-bot', password: 'pa55-w0rd'])
        return h
    }

    void testMergeRequestBuildPublishesAPrereleaseToDevOnly() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'MR-42', CHANGE_ID: '42'], '1.4.0-mr.42.7')
        h.run('modelPipeline', [config: 'models/weed.yaml', fleet: 'fleet/east.yaml', registryCredentialsId: 'artifactory'])
        String c = "'models/weed.yaml' '--workdir' 'work/ci'"
        assert h.pytoolsCommands() == [
            "pytools 'checkpoint' 'fetch' ${c}", "pytools 'export' ${c}",
            "pytools 'engine' 'build' ${c}", "pytools 'parity' ${c}", "pytools 'report' ${c}", "pytools 'bench' ${c}",
            "pytools 'package' 'build' ${c} '--prerelease' 'mr.42.7'",
            "pytools 'publish' 'work/ci/package' '--channel' 'dev'",
            "pytools 'release' 'summary' 'work/ci/package'"]*.toString()
        assert h.callsOf('stage')*.name == ['Export', 'GPU', 'Engine', 'Parity', 'Bench', 'Publish']
        assert h.callsOf('stageSkipped')*.name == ['Release', 'Rollout']
        assert h.callsOf('input') == [] && h.callsOf('lock') == []
        assert h.currentBuild.description == 'weed-detector 1.4.0-mr.42.7 (trt8.5-sm72-l4t35.3.1): parity PASS'
        assert h.currentBuild.result == 'SUCCESS'
        assertNoSecretInAnyCommand(h)
    }

    void testStagesRunOnTheirAgentsAndTheExportTravelsByStash() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'MR-42', CHANGE_ID: '42'], '1.4.0-mr.42.7')
        h.run('modelPipeline', [engineLabel: 'xavier', linuxLabel: 'x86'])
        Map nodeOf = h.callsOf('sh').findAll { it.script.contains('/bin/pytools') }.collectEntries {
            [(it.script.split("' '")[1]): it.node]
        }
        assert nodeOf == [checkpoint: 'x86', export: 'x86', engine: 'xavier', parity: 'xavier', report: 'xavier',
                          bench: 'xavier', package: 'xavier', publish: 'xavier', release: 'xavier']
        assert h.callsOf('stash').collect { [it.name, it.includes, it.node] } == [['model-cicd-export', 'work/ci/**', 'x86']]
        assert h.callsOf('unstash').collect { [it.name, it.node] } == [['model-cicd-export', 'xavier']]
        assert h.callsOf('node')*.label == ['x86', 'xavier']    // the engine step runs in place
        assert h.callsOf('timeout').collect { [it.time, it.unit] } == [[120, 'MINUTES'], [120, 'MINUTES']]
        assert h.callsOf('junit')*.testResults == ['work/ci/reports/parity.xml']
    }

    void testMainBuildReleasesAndRollsOutWaveByWave() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'main'], '1.4.0')
        h.answerInput(approveBy: 'alice').answerInput(approveBy: 'carol')
        h.run('modelPipeline', [fleet: 'fleet/east.yaml', approvalTimeoutHours: 8])
        List<String> cmds = h.pytoolsCommands()
        assert cmds.contains("pytools 'package' 'build' 'model.yaml' '--workdir' 'work/ci'")
        String rollout = "pytools 'rollout' 'weed-detector' '1.4.0' '--fleet' 'fleet/east.yaml' " +
            "'--workdir' 'work/ci' '--channel' 'release'"
        assert cmds.findAll { it =~ /'(promote|rollout)'/ } == [
            "pytools 'promote' 'weed-detector' '1.4.0' '--from' 'dev' '--to' 'release'",
            "${rollout} '--dry-run' '--json'",
            "${rollout} '--approval' 'external'",
            "${rollout} '--resume' '--approved-by' 'carol' '--approval' 'external'"]*.toString()
        assert h.callsOf('stage')*.name == ['Export', 'GPU', 'Engine', 'Parity', 'Bench', 'Publish', 'Release', 'Rollout']
        Map rolloutStage = h.callsOf('stage').find { it.name == 'Rollout' }
        assert rolloutStage.node == null                   // the rollout stage holds no agent
        assert h.callsOf('input').every { it.node == null && it.inTimeout && it.submitter == 'release-managers' }
        assert h.callsOf('timeout').findAll { it.unit == 'HOURS' }*.time == [8, 8]
        assert h.callsOf('lock')*.resource == ['fleet-east']
        assert h.callsOf('milestone').size() == 3
        assert h.currentBuild.result == 'SUCCESS'
    }

    void testTagBuildReleasesToo() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'v1.4.0', TAG_NAME: 'v1.4.0'], '1.4.0')
        h.run('modelPipeline', [releaseChannel: 'staging'])
        assert h.pytoolsCommands().contains("pytools 'promote' 'weed-detector' '1.4.0' '--from' 'dev' '--to' 'staging'")
        assert h.callsOf('stageSkipped')*.name == ['Rollout']     // no fleet configured
    }

    void testFeatureBranchPublishesABranchPrerelease() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'feature/Faster_NMS'], '1.4.0-feature-faster-nms.7')
        h.run('modelPipeline', [:])
        assert h.pytoolsCommands().contains(
            "pytools 'package' 'build' 'model.yaml' '--workdir' 'work/ci' '--prerelease' 'feature-faster-nms.7'")
        assert h.callsOf('stageSkipped')*.name == ['Release', 'Rollout']
    }

    void testAbortedWaveEndsTheBuildAbortedWithTheRecord() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'main'], '1.4.0')
        h.answerInput(abortBy: 'alice')
        h.failure { h.run('modelPipeline', [fleet: 'fleet/east.yaml']) }
        assert h.currentBuild.result == 'ABORTED'
        assert h.currentBuild.description.endsWith('halted at wave canary: aborted by alice')
        assert !h.pytoolsCommands().any { it.contains("'--approval'") }
    }

    void testFailedParityStopsBeforePublish() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'MR-9', CHANGE_ID: '9'], '1.4.0-mr.9.7')
        h.onSh("'parity'", '', 3)
        h.failure { h.run('modelPipeline', [:]) }
        assert h.currentBuild.result == 'FAILURE'
        assert !h.pytoolsCommands().any { it.contains("'publish'") || it.contains("'package'") }
        assert h.callsOf('junit').size() == 1
    }

    void testUnknownKeyFailsBeforeThePipelineStarts() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'main'], '1.4.0')
        assert failureMessage(h) { h.run('modelPipeline', [fleets: 'x.yaml']) }.startsWith(
            'modelPipeline: unknown config key(s): fleets (allowed: ')
        assert h.calls.findAll { it.step == 'stage' } == []
    }
}
