/** Every step: Map config over documented defaults; unknown keys and missing ones are refused. */
class ConfigTest extends HarnessTest {
    static final List STEPS = ['pytools', 'modelExport', 'modelEngine', 'modelParity', 'modelBench',
                               'modelPublish', 'modelPromote', 'modelRollout', 'modelPipeline']

    void testEveryStepRejectsAnUnknownKeyBeforeDoingAnything() {
        for (String step in STEPS) {
            PipelineHarness h = harness()
            String message = failureMessage(h) { h.runOn('linux', step, [confg: 'typo.yaml']) }
            assert message.startsWith("${step}: unknown config key(s): confg (allowed: ")
            assert h.shScripts() == []
        }
    }

    void testUnknownKeyMessageListsTheAllowedKeys() {
        PipelineHarness h = harness()
        String message = failureMessage(h) { h.runOn('linux', 'modelBench', [baseLine: 'b.json', zz: 1]) }
        assert message == 'modelBench: unknown config key(s): baseLine, zz (allowed: baseline, cacheRoot, ' +
            'config, force, python, requirements, workdir)'
    }

    void testEveryStepHasAHelpPage() {
        File vars = new File(System.getProperty('repo.root'), 'vars')
        List<String> steps = vars.list().findAll { it.endsWith('.groovy') }.collect { it - '.groovy' }.sort()
        assert steps.containsAll(STEPS)
        for (String step in steps) {
            File help = new File(vars, "${step}.txt")
            assert help.file && help.text.trim()
        }
    }

    void testMissingRequiredKeys() {
        PipelineHarness h = harness()
        assert failureMessage(h) { h.runOn('linux', 'modelPromote', [name: 'weed-detector']) } ==
            'modelPromote: missing required config key(s): version'
        assert failureMessage(h) { h.run('modelRollout', [name: 'weed-detector', version: '']) } ==
            'modelRollout: missing required config key(s): version, fleet'
        assert failureMessage(h) { h.runOn('linux', 'pytools', [:]) } ==
            'pytools: missing required config key(s): args'
        assert h.shScripts() == []
    }

    void testShellQuotingKeepsEveryWordLiteral() {
        PipelineHarness h = harness()
        Script config = (Script) h.binding.getVariable('stepConfig')
        assert config.quote("it's \$HOME `id`") == "'it'\\''s \$HOME `id`'"
        assert config.command(['a b', '--x', '$y']) == "'a b' '--x' '\$y'"
    }
}
