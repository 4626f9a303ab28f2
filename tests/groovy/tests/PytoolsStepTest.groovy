/** The environment step: a venv cached per requirements hash, then the exact pytools command. */
class PytoolsStepTest extends HarnessTest {
    void testCreatesTheCachedVenvThenRunsPytools() {
        PipelineHarness h = harness()
        h.runOn('linux', 'pytools', [args: ['config', 'check', 'my model.yaml']])
        assert h.callsOf('libraryResource')*.path == ['model-cicd/pytools-venv.sh']
        assert h.files['.model-cicd/pytools-venv.sh'] == new File(h.root, 'resources/model-cicd/pytools-venv.sh').text
        assert h.shScripts() == [VENV_SETUP, "'${VENV}/bin/pytools' 'config' 'check' 'my model.yaml'"]
        assert h.callsOf('sh')[0].returnStdout
    }

    void testCacheRootPythonAndRequirementsAreConfigurable() {
        PipelineHarness h = harness()
        h.runOn('jetson', 'pytools', [args: ['bench', 'm.yaml'], requirements: 'ci/req.txt',
                                      python: 'python3.8', cacheRoot: '/data/venvs'])
        assert h.shScripts()[0] == "bash '.model-cicd/pytools-venv.sh' 'ci/req.txt' 'python3.8' '/data/venvs'"
    }

    void testReturnsStdoutOrStatusWhenAsked() {
        PipelineHarness h = harness()
        h.onSh('versions', '1.4.0\n').onSh('parity', '', 3)
        assert h.runOn('linux', 'pytools', [args: ['versions', 'm'], returnStdout: true]) == '1.4.0\n'
        assert h.runOn('linux', 'pytools', [args: ['parity', 'm.yaml'], returnStatus: true]) == 3
    }

    void testArgsMustBeAList() {
        PipelineHarness h = harness()
        assert failureMessage(h) { h.runOn('linux', 'pytools', [args: 'export model.yaml']) } ==
            "pytools: 'args' must be a list of words, e.g. ['export', 'model.yaml']"
    }

    void testNeedsAnAgent() {
        PipelineHarness h = harness()
        String message = failureMessage(h) { h.run('pytools', [args: ['export']]) }
        assert message.contains('Required context class hudson.FilePath is missing')
    }
}
