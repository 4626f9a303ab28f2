/** The declarative template: version policy per build kind, agents, checkouts, approvals, description. */
class ModelPipelineTest extends HarnessTest {
    static final String MANIFEST = '{"name": "weed-detector", "version": "%s", "platform": "trt8.5-sm72-l4t35.3.1"}'
    static final String CONFIG = '{"valid": true, "file": "model.yaml", "config": {"name": "weed-detector", "version": "1.4.0"}}'
    static final String PLAN = '{"waves": [{"name": "canary", "robots": ["robot-01"]}, ' +
        '{"name": "100%", "robots": ["robot-02", "robot-03"]}]}'
    static final String C = "'model.yaml' '--workdir' 'work/ci'"

    static List<String> promotes(PipelineHarness h) {
        return h.pytoolsCommands().findAll { it =~ /'(promote|rollout)'/ }
    }

    PipelineHarness pipelineHarness(Map environment, String version) {
        PipelineHarness h = harness()
        h.env.putAll(environment)
        h.files['work/ci/package/manifest.json'] = String.format(MANIFEST, version)
        h.onSh("'config' 'check'", CONFIG)
        h.onSh("'versions' 'weed-detector' '--json'", '{"name": "weed-detector", "versions": []}')
        h.onSh("'release' 'summary'", "weed-detector ${version} (trt8.5-sm72-l4t35.3.1): parity PASS\n")
        h.onSh("'--dry-run' '--json'", PLAN).onSh("'--resume'", '', 0).onSh("'--approval' 'external'", '', 4)
        h.credential('artifactory', [kind: 'usernamePassword', username: 'ci-bot', password: 'pa55-w0rd'])
        return h
    }

    void testMergeRequestBuildPublishesAnMrPrereleaseToDevOnly() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'MR-42', CHANGE_ID: '42'], '1.4.0-mr.42.7')
        h.run('modelPipeline', [config: 'models/weed.yaml', fleet: 'fleet/east.yaml', registryCredentialsId: 'artifactory'])
        String c = "'models/weed.yaml' '--workdir' 'work/ci'"
        assert h.pytoolsCommands() == [
            "pytools 'config' 'check' 'models/weed.yaml' '--no-import' '--json'",
            "pytools 'checkpoint' 'fetch' ${c}", "pytools 'export' ${c}",
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

    void testEveryAgentRunsOnTheBuildsCheckoutAndNoModelFileIsStashed() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'MR-42', CHANGE_ID: '42'], '1.4.0-mr.42.7')
        h.otherBuildLeft('xavier-agent-1', 'f00ba47')        // a stale commit in the GPU workspace
        h.run('modelPipeline', [engineLabel: 'xavier', linuxLabel: 'x86'])
        Map nodeOf = h.callsOf('sh').findAll { it.script.contains('/bin/pytools') }.collectEntries {
            [(it.script.split("' '")[1]): it.node]
        }
        assert nodeOf == [config: 'x86', checkpoint: 'xavier', export: 'xavier', engine: 'xavier', parity: 'xavier',
                          report: 'xavier', bench: 'xavier', package: 'xavier', publish: 'xavier', release: 'xavier']
        assert h.callsOf('sh').every { it.commit == h.commit }
        assert h.callsOf('checkout')*.node == ['x86', 'xavier']
        // the checkpoint and exports never go through the controller: nothing is stashed
        assert h.callsOf('stash') == [] && h.callsOf('unstash') == []
        assert h.callsOf('node')*.label == ['x86', 'xavier']    // the engine step runs in place
        assert h.callsOf('junit')*.testResults == ['work/ci/reports/parity.xml']
    }

    void testStageTimeoutsCountWorkNotTheWaitForAnAgent() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'MR-42', CHANGE_ID: '42'], '1.4.0-mr.42.7')
        h.run('modelPipeline', [stageTimeoutMinutes: 45])
        List<Map> timeouts = h.callsOf('timeout')
        assert timeouts.collect { [it.time, it.unit] }.unique() == [[45, 'MINUTES']] && timeouts.size() == 5
        assert timeouts.every { it.node != null }      // started inside the agent, so queue time is not counted
    }

    void testReleaseBranchPublishesAnRcPrereleaseAndPromotesToStaging() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'main'], '1.4.0-rc.7')
        h.run('modelPipeline', [fleet: 'fleet/east.yaml'])
        assert h.pytoolsCommands().contains("pytools 'package' 'build' ${C} '--prerelease' 'rc.7'".toString())
        assert promotes(h) == ["pytools 'promote' 'weed-detector' '1.4.0-rc.7' '--from' 'dev' '--to' 'staging'"]
        // the production fleet only ever gets tagged releases
        assert h.callsOf('stageSkipped')*.name == ['Rollout'] && h.callsOf('input') == []
    }

    void testReleaseBranchRollsOutToTheStagingFleetWhenSet() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'main'], '1.4.0-rc.7')
        h.answerInput(approveBy: 'alice').answerInput(approveBy: 'carol')
        h.run('modelPipeline', [fleet: 'fleet/east.yaml', stagingFleet: 'fleet/field-east.yaml'])
        assert promotes(h)[1] == "pytools 'rollout' 'weed-detector' '1.4.0-rc.7' '--fleet' 'fleet/field-east.yaml' " +
            "'--workdir' 'work/ci' '--channel' 'staging' '--dry-run' '--json'"
    }

    void testTagBuildReleasesPromotesAndRollsOutWaveByWave() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'v1.4.0', TAG_NAME: 'v1.4.0'], '1.4.0')
        h.answerInput(approveBy: 'alice').answerInput(approveBy: 'carol')
        h.run('modelPipeline', [fleet: 'fleet/east.yaml', approvalTimeoutHours: 8])
        assert h.pytoolsCommands().contains("pytools 'package' 'build' ${C}".toString())
        String rollout = "pytools 'rollout' 'weed-detector' '1.4.0' '--fleet' 'fleet/east.yaml' " +
            "'--workdir' 'work/ci' '--channel' 'release'"
        assert promotes(h) == [
            "pytools 'promote' 'weed-detector' '1.4.0' '--from' 'dev' '--to' 'release'",
            "${rollout} '--dry-run' '--json'",
            "${rollout} '--approval' 'external'",
            "${rollout} '--resume' '--approved-by' 'carol' '--approval' 'external'"]*.toString()
        assert h.callsOf('stage')*.name == ['Export', 'GPU', 'Engine', 'Parity', 'Bench', 'Publish', 'Release', 'Rollout']
        assert h.callsOf('stage').find { it.name == 'Rollout' }.node == null   // the rollout stage holds no agent
        assert h.callsOf('input').every { it.node == null && it.inTimeout && it.submitter == 'release-managers' }
        assert h.callsOf('timeout').findAll { it.unit == 'HOURS' }*.time == [8, 8]
        assert h.callsOf('lock')*.resource == ['fleet-east']
        assert h.callsOf('milestone').size() == 3
        assert h.callsOf('sh').every { it.commit == h.commit }
        assert h.currentBuild.result == 'SUCCESS'
    }

    void testATagThatDoesNotMatchTheConfigVersionFailsFirst() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'v1.4.1', TAG_NAME: 'v1.4.1'], '1.4.0')
        assert failureMessage(h) { h.run('modelPipeline', [fleet: 'fleet/east.yaml']) } ==
            'modelPipeline: tag v1.4.1 does not match the version in model.yaml (1.4.0); ' +
            'a release tag must be v1.4.0, or change the version in model.yaml'
        assert h.pytoolsCommands() == ["pytools 'config' 'check' 'model.yaml' '--no-import' '--json'"]
        assert h.currentBuild.result == 'FAILURE'
    }

    void testRebuildingATagReusesThePublishedReleaseAndRollsOutAgain() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'v1.4.0', TAG_NAME: 'v1.4.0'], '1.4.0')
        h.shRules.add(0, [pattern: "'versions' 'weed-detector' '--json'", status: 0, stdout:
            '{"name": "weed-detector", "versions": [{"version": "1.3.9", "channels": ["release"]}, ' +
            '{"version": "1.4.0+git.5a1e0c2.build.6", "channels": ["dev", "release"]}]}'])
        h.answerInput(approveBy: 'alice').answerInput(approveBy: 'alice')
        h.run('modelPipeline', [fleet: 'fleet/east.yaml', registryCredentialsId: 'artifactory'])
        List<String> cmds = h.pytoolsCommands()
        assert !cmds.any { it =~ /'(package|publish|promote)'/ }
        assert h.currentBuild.description == 'weed-detector 1.4.0+git.5a1e0c2.build.6: already published (dev, release), re-used'
        assert cmds.findAll { it.contains("'rollout'") }.size() == 3
        assert h.callsOf('sh').find { it.script.contains("'versions'") }.credentialVariables ==
            ['ARTIFACTORY_PASSWORD', 'ARTIFACTORY_USER']
        assert h.currentBuild.result == 'SUCCESS'
    }

    void testFeatureBranchPublishesABranchPrerelease() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'feature/Faster_NMS'], '1.4.0-feature-faster-nms.7')
        h.run('modelPipeline', [:])
        assert h.pytoolsCommands().contains("pytools 'package' 'build' ${C} '--prerelease' 'feature-faster-nms.7'".toString())
        assert h.callsOf('stageSkipped')*.name == ['Release', 'Rollout']
    }

    void testAbortedWaveEndsTheBuildAbortedWithTheRecord() {
        PipelineHarness h = pipelineHarness([BRANCH_NAME: 'v1.4.0', TAG_NAME: 'v1.4.0'], '1.4.0')
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
