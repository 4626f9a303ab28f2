/** What every step test starts from: a harness over the repository's real vars/ and resources/. */
abstract class HarnessTest {
    static final String VENV = '/home/jenkins/.cache/model-cicd/venvs/py3.11-0123456789abcdef'
    static final String VENV_SETUP = "bash '.model-cicd/pytools-venv.sh' 'requirements.txt' 'python3'"

    /** No secret reached a shell command (Groovy interpolation would put it there) or the log. */
    static void assertNoSecretInAnyCommand(PipelineHarness h) {
        assert h.secrets
        for (Map call in h.callsOf('sh')) {
            assert !call.gstring
            assert !h.secrets.any { String secret -> call.script.contains(secret) }
        }
        assert !h.log.any { String line -> h.secrets.any { line.contains(it) } }
    }

    PipelineHarness harness(File root = new File(System.getProperty('repo.root'))) {
        PipelineHarness h = new PipelineHarness(root)
        h.onSh('pytools-venv\\.sh', VENV + '\n')
        return h
    }

    /** Run `body`, which must fail; return the failure's message. */
    String failureMessage(PipelineHarness h, Closure body) {
        return h.failure(body).message
    }
}
