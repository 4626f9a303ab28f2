/**
 * The harness knows Jenkins' CPS and declarative rules: each of the classic mistakes, planted
 * into a copy of the library, is rejected as Jenkins would reject it.
 */
class CpsRulesTest extends HarnessTest {
    static final Map ROLLOUT = [name: 'weed-detector', version: '1.4.0', fleet: 'fleet/field-east.yaml']
    static final String PLAN = '{"waves": [{"name": "canary", "robots": ["robot-01"]}]}'
    static final String PROMOTE_SCRIPT = '''                        script {
                            promote(cfg, registry, published)
                        }'''

    /** A copy of vars/ and resources/ with `find` replaced by `replace` in one step file. */
    File plantedCopy(String step, String find, String replace) {
        File root = File.createTempDir('planted-', '-library')
        File repo = new File(System.getProperty('repo.root'))
        for (String dir in ['vars', 'resources']) {
            File from = new File(repo, dir)
            from.eachFileRecurse(groovy.io.FileType.FILES) { File f ->
                File to = new File(root, dir + f.path.substring(from.path.length()))
                to.parentFile.mkdirs()
                to.bytes = f.bytes
            }
        }
        File file = new File(root, "vars/${step}.groovy")
        assert file.text.contains(find)
        file.text = file.text.replace(find, replace)
        return root
    }

    PipelineHarness rolloutHarness(File root) {
        PipelineHarness h = harness(root)
        h.onSh("'--dry-run' '--json'", PLAN).onSh("'--approval' 'external'", '', 0)
        h.answerInput(approveBy: 'alice')
        return h
    }

    void testAssignmentDirectlyInADeclarativeStepsBlockFailsTheBuild() {
        File root = plantedCopy('modelPipeline', PROMOTE_SCRIPT,
                                  '                        def x = publish(cfg, registry, published)')
        Throwable failure = harnessFailure(root)
        // As in Jenkins: a compile error (MultipleCompilationErrorsException) before any stage runs
        assert failure.message =~ /WorkflowScript \(modelPipeline\): \d+: Expected a step @ line \d+, column 25\./
    }

    void testMethodCallOnAnObjectInAStepsBlockFailsTheBuild() {
        File root = plantedCopy('modelPipeline', PROMOTE_SCRIPT,
                                '                        published.putAll(publish(cfg, registry, published))')
        assert harnessFailure(root).message.contains('Method calls on objects not allowed outside "script" blocks.')
    }

    void testStepBodiesInsideStepsAreStepsBlocksToo() {
        File root = plantedCopy('modelPipeline', 'modelBench(benchCfg)', "dir('x') { int n = 1 }")
        assert harnessFailure(root).message.contains('Expected a step')
    }

    void testAMatcherHeldAcrossAStepCannotBeSaved() {
        File root = plantedCopy('modelRollout', '    List decisions = []\n',
                                '    List decisions = []\n    java.util.regex.Matcher semver = cfg.version =~ /^(\\d+)\\./\n')
        PipelineHarness h = rolloutHarness(root)
        Throwable failure = h.failure { h.run('modelRollout', ROLLOUT) }
        assert failure instanceof CpsViolation
        assert failure.message.startsWith('java.io.NotSerializableException: java.util.regex.Matcher: ' +
                                          "held in 'semver' of modelRollout.call when the step milestone ran")
        assert h.callsOf('lock') == [] && h.callsOf('input') == []
    }

    void testAnIteratorHeldAcrossTheApprovalCannotBeSaved() {
        File root = plantedCopy('modelRollout', '    List waves = plan(cfg)\n',
                                '    List waves = plan(cfg)\n    Iterator robots = waves.iterator()\n')
        PipelineHarness h = rolloutHarness(root)
        Throwable failure = h.failure { h.run('modelRollout', ROLLOUT) }
        assert failure instanceof CpsViolation && failure.message.contains("held in 'robots'")
    }

    void testAStepCalledInsideANonCpsMethodFails() {
        File root = plantedCopy('modelRollout', "    return inventory.tokenize('/')",
                                "    echo(\"fleet ${'$'}{inventory}\")\n    return inventory.tokenize('/')")
        PipelineHarness h = rolloutHarness(root)
        Throwable failure = h.failure { h.run('modelRollout', ROLLOUT) }
        assert failure instanceof CpsViolation
        assert failure.message == 'echo: a pipeline step was called inside the @NonCPS method modelRollout.fleetName; ' +
            'steps may only be called from CPS-transformed code'
    }

    void testTheUnplantedLibraryPassesTheSameRules() {
        PipelineHarness h = rolloutHarness(new File(System.getProperty('repo.root')))
        assert h.run('modelRollout', ROLLOUT).waves*.by == ['alice']
    }

    private Throwable harnessFailure(File root) {
        try {
            harness(root)
        // whatever the loading threw is what the test inspects
        // groovylint-disable-next-line CatchThrowable
        } catch (Throwable t) {
            return t
        }
        throw new AssertionError('the planted library loaded without complaint')
    }
}
