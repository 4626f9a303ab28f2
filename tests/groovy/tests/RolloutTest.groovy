import org.jenkinsci.plugins.workflow.steps.FlowInterruptedException

/** Staged rollout: approvals per wave (approved, aborted, timed out, wrong group), lock, milestones. */
class RolloutTest extends HarnessTest {
    static final String PLAN = '''{"name": "weed-detector", "version": "1.4.0", "waves": [
        {"name": "canary", "robots": ["robot-01", "robot-02"]},
        {"name": "50%", "robots": [{"name": "robot-03"}, {"name": "robot-04"}, {"name": "robot-05"}]}]}'''
    static final Map ROLLOUT = [name: 'weed-detector', version: '1.4.0', fleet: 'fleet/field-east.yaml']
    static final String COMMAND =
        "pytools 'rollout' 'weed-detector' '1.4.0' '--fleet' 'fleet/field-east.yaml' '--workdir' 'work/ci'"
    static final String WAVE1 = "${COMMAND} '--approval' 'external'"

    /** pytools pauses after the first wave (exit 4) and completes on the resume (exit 0). */
    PipelineHarness rolloutHarness() {
        PipelineHarness h = harness()
        h.onSh("'--dry-run' '--json'", PLAN).onSh("'--resume'", '', 0).onSh("'--approval' 'external'", '', 4)
        return h
    }

    void testEveryWaveApprovedRollsOutInOrder() {
        PipelineHarness h = rolloutHarness()
        h.answerInput(approveBy: 'alice').answerInput(approveBy: 'carol')
        Map result = h.run('modelRollout', ROLLOUT)
        assert h.pytoolsCommands() == [
            "${COMMAND} '--dry-run' '--json'",
            WAVE1,
            "${COMMAND} '--resume' '--approved-by' 'carol' '--approval' 'external'"]*.toString()
        assert result.waves*.by == ['alice', 'carol']
        List<Map> inputs = h.callsOf('input')
        assert inputs*.id == ['Wave1', 'Wave2']
        assert inputs*.message == ['Roll out weed-detector 1.4.0 to wave canary (2 robots: robot-01, robot-02)',
                                   'Roll out weed-detector 1.4.0 to wave 50% (3 robots: robot-03, robot-04, robot-05)']
        assert inputs.every { it.submitter == 'release-managers' && it.submitterParameter == 'approver' }
        assert inputs.every { it.node == null }          // no agent held while waiting
        assert inputs.every { it.inTimeout }
        assert inputs.every { it.locks == ['fleet-field-east'] }
        assert h.callsOf('timeout').findAll { it.unit == 'HOURS' }*.time == [24, 24]
        assert h.callsOf('lock').collect { [it.resource, it.inversePrecedence] } == [['fleet-field-east', true]]
        // a milestone before the lock and after each approval, before that wave's rollout runs
        List<String> order = h.calls.findAll {
            it.step in ['milestone', 'input', 'lock', 'unstash'] || (it.step == 'sh' && it.script.contains("'--approval'"))
        }.collect { it.step == 'sh' ? 'rollout' : it.step }
        assert order == ['milestone', 'lock', 'input', 'milestone', 'rollout', 'input', 'milestone', 'unstash', 'rollout']
        // the rollout record follows the rollout to whichever agent runs the next wave
        assert h.callsOf('stash').collect { [it.name, it.includes] }.unique() ==
            [['model-cicd-rollout-record', 'work/ci/rollouts/**']]
        assert h.callsOf('unstash')*.name == ['model-cicd-rollout-record']
        assert h.callsOf('archiveArtifacts')*.artifacts.unique() ==
            ['work/ci/rollouts/*.json', 'work/ci/reports/rollout-approvals.json']
        assert h.files['work/ci/reports/rollout-approvals.json'].contains('"by": "carol"')
    }

    void testAbortDuringAWaveHaltsAndRecordsWhoAborted() {
        PipelineHarness h = rolloutHarness()
        h.currentBuild.description = 'weed-detector 1.4.0 (onnxruntime): parity PASS'
        h.answerInput(approveBy: 'alice').answerInput(abortBy: 'carol')
        Throwable failure = h.failure { h.run('modelRollout', ROLLOUT) }
        assert failure instanceof FlowInterruptedException && failure.result == 'ABORTED'
        assert !h.pytoolsCommands().any { it.contains("'--resume'") }
        String halt = 'rollout of weed-detector 1.4.0 halted at wave 50%: aborted by carol'
        assert h.currentBuild.description == 'weed-detector 1.4.0 (onnxruntime): parity PASS\n' + halt
        assert h.log.contains(halt)
        String record = h.files['work/ci/reports/rollout-approvals.json']
        assert record.contains('"halted": "' + halt + '"')
        assert record.contains('"reason": "aborted by carol"') && record.contains('"by": "alice"')
    }

    void testApprovalTimeoutHaltsWithoutRollingOut() {
        PipelineHarness h = rolloutHarness()
        h.answerInput([:])    // nobody answers
        Throwable failure = h.failure { h.run('modelRollout', ROLLOUT + [approvalTimeout: 30, approvalTimeoutUnit: 'MINUTES']) }
        assert failure instanceof FlowInterruptedException
        assert h.callsOf('input').size() == 1 && h.callsOf('timeout')[1].time == 30
        assert h.pytoolsCommands().size() == 1      // only the plan
        assert h.currentBuild.description ==
            'rollout of weed-detector 1.4.0 halted at wave canary: no approval before the timeout'
    }

    void testApprovalOutsideTheSubmitterGroupIsRefused() {
        PipelineHarness h = rolloutHarness()
        h.answerInput(attempts: ['bob'], approveBy: 'alice').answerInput(approveBy: 'bob')
        Throwable failure = h.failure { h.run('modelRollout', ROLLOUT) }
        assert h.callsOf('inputRefused')*.user == ['bob', 'bob']
        assert h.callsOf('inputApproved')*.user == ['alice']
        // bob's "approval" of the second wave never counts: the wave times out instead
        assert failure instanceof FlowInterruptedException
        assert h.pytoolsCommands().findAll { it.contains("'--approval'") } == [WAVE1.toString()]
    }

    void testCustomSubmitterLockAndSshCredentials() {
        PipelineHarness h = rolloutHarness()
        h.credential('fleet-ssh', [kind: 'sshUserPrivateKey', username: 'deploy', key: '-----BEGIN OPENSSH PRIVATE KEY-----abc'])
        h.groups.dave = ['field-ops']
        h.answerInput(approveBy: 'dave').answerInput(approveBy: 'dave')
        h.run('modelRollout', ROLLOUT + [submitter: 'field-ops,alice', lockResource: 'east-fleet',
                                         sshCredentialsId: 'fleet-ssh', label: 'deploy'])
        assert h.callsOf('input')*.submitter == ['field-ops,alice', 'field-ops,alice']
        assert h.callsOf('lock')*.resource == ['east-fleet']
        assert h.callsOf('sh').findAll { it.script.contains('/bin/pytools') }.every {
            it.credentialVariables == ['MODEL_CICD_SSH_KEY', 'MODEL_CICD_SSH_USER'] && it.node == 'deploy'
        }
        assertNoSecretInAnyCommand(h)
    }

    void testMissingSshCredentialFailsBeforeAnyRollout() {
        PipelineHarness h = rolloutHarness()
        String message = failureMessage(h) { h.run('modelRollout', ROLLOUT + [sshCredentialsId: 'nope']) }
        assert message == "Could not find credentials entry with ID 'nope'"
        assert h.callsOf('input') == [] && h.pytoolsCommands() == []
    }

    void testAHaltedWaveFailsTheBuildAndStopsTheRollout() {
        PipelineHarness h = harness()
        h.onSh("'--dry-run' '--json'", PLAN).onSh("'--approval' 'external'", '', 3)
        h.answerInput(approveBy: 'alice')
        assert failureMessage(h) { h.run('modelRollout', ROLLOUT) } ==
            'modelRollout: wave canary of weed-detector 1.4.0 halted: too many robots failed (rolled back); ' +
            'see work/ci/rollouts/weed-detector-1.4.0.json'
        assert h.callsOf('input').size() == 1
        assert h.callsOf('archiveArtifacts')*.artifacts.contains('work/ci/rollouts/*.json')
    }

    void testARolloutThatFinishesEarlyAsksNoMoreApprovals() {
        PipelineHarness h = harness()
        h.onSh("'--dry-run' '--json'", PLAN).onSh("'--approval' 'external'", '', 0)
        h.answerInput(approveBy: 'alice')
        Map result = h.run('modelRollout', ROLLOUT + [channel: 'release', rolloutArgs: ['--max-failures', '10%']])
        assert result.waves*.wave == ['canary']
        assert h.pytoolsCommands()[1] == "${COMMAND} '--channel' 'release' '--approval' 'external' '--max-failures' '10%'"
    }

    void testARolloutThatLeavesRobotsBehindFailsTheBuild() {
        PipelineHarness h = harness()
        h.onSh("'--dry-run' '--json'", PLAN).onSh("'--approval' 'external'", '', 5)
        h.answerInput(approveBy: 'alice')
        assert failureMessage(h) { h.run('modelRollout', ROLLOUT) } ==
            'modelRollout: weed-detector 1.4.0 finished with robots not on it (deferred or failed); ' +
            'see work/ci/rollouts/weed-detector-1.4.0.json'
    }

    void testAnUnexpectedExitStatusFails() {
        PipelineHarness h = harness()
        h.onSh("'--dry-run' '--json'", PLAN).onSh("'--approval' 'external'", '', 2)
        h.answerInput(approveBy: 'alice')
        assert failureMessage(h) { h.run('modelRollout', ROLLOUT) } ==
            'modelRollout: pytools rollout exited 2 after wave canary'
    }

    void testAPlanWithoutWavesIsAnError() {
        PipelineHarness h = harness()
        h.onSh("'--dry-run'", '{"waves": []}')
        assert failureMessage(h) { h.run('modelRollout', ROLLOUT) } ==
            'modelRollout: the rollout plan for fleet/field-east.yaml has no waves'
    }

    void testEveryWaveChecksOutTheBuildsOwnCommitWhateverTheAgentHeld() {
        PipelineHarness h = rolloutHarness()
        h.otherBuildLeft('linux-agent-1', 'f00ba47')       // hours between waves: another build was here
        h.answerInput(approveBy: 'alice').answerInput(approveBy: 'carol')
        h.run('modelRollout', ROLLOUT)
        List<Map> pytools = h.callsOf('sh').findAll { it.script.contains('/bin/pytools') }
        assert pytools.size() == 3 && pytools.every { it.commit == h.commit && it.node == 'linux' }
        assert h.callsOf('checkout').size() == h.callsOf('node').size()
    }

    void testAWaveWithoutTheRepositoryFailsAsPytoolsWould() {
        PipelineHarness h = rolloutHarness()
        h.repository.remove('fleet/field-east.yaml')       // the inventory is not in this commit
        h.answerInput(approveBy: 'alice')
        assert failureMessage(h) { h.run('modelRollout', ROLLOUT) } == 'script returned exit code 2'
        assert h.log.contains("pytools: 'fleet/field-east.yaml' not found in the workspace of linux (commit 5a1e0c2)")
    }

    void testAnApprovalThatComesBackWithoutAnApproverStopsTheRollout() {
        PipelineHarness h = rolloutHarness()
        h.oldInputPlugin = true                             // pipeline-input-step before 532.v9e7466cb_4406
        h.answerInput(approveBy: 'alice', via: 'proceedEmpty')
        String message = failureMessage(h) { h.run('modelRollout', ROLLOUT) }
        assert message.startsWith('modelRollout: wave canary of weed-detector 1.4.0 was approved but Jenkins ' +
                                  'returned no approver')
        assert h.pytoolsCommands().findAll { it.contains("'--approval'") } == []
        assert h.files['work/ci/reports/rollout-approvals.json'].contains('"reason": "no approver"')
    }

    void testTheSubmitPathKeepsTheApproverOnOldPluginsToo() {
        PipelineHarness h = rolloutHarness()
        h.oldInputPlugin = true
        h.answerInput(approveBy: 'alice', via: 'submit').answerInput(approveBy: 'carol', via: 'submit')
        assert h.run('modelRollout', ROLLOUT).waves*.by == ['alice', 'carol']
    }

    void testAdministerMayApproveAndJobCancelMayAbort() {
        PipelineHarness h = rolloutHarness()
        h.cancellers << 'bob'
        h.answerInput(approveBy: 'root').answerInput(abortBy: 'bob')
        Throwable failure = h.failure { h.run('modelRollout', ROLLOUT) }
        assert failure instanceof FlowInterruptedException
        assert h.callsOf('inputApproved')*.user == ['root']
        assert h.currentBuild.description == 'rollout of weed-detector 1.4.0 halted at wave 50%: aborted by bob'
    }

    void testEveryAgentWaitHasALimit() {
        PipelineHarness h = rolloutHarness()
        h.answerInput(approveBy: 'alice').answerInput(abortBy: 'carol')
        h.failure { h.run('modelRollout', ROLLOUT + [agentTimeoutMinutes: 15, waveTimeoutMinutes: 90]) }
        // plan, wave 1, record, then the abort handler's record: each node inside a timeout
        assert h.callsOf('node').size() == 4
        assert h.callsOf('node').every { Map n -> h.calls[h.calls.indexOf(n) - 1].step == 'timeout' }
        assert h.callsOf('timeout').findAll { it.unit == 'MINUTES' }*.time == [15, 90, 15, 15]
    }
}
