/** publish and promote: exact commands and credentials only through withCredentials. */
class PublishPromoteTest extends HarnessTest {
    static final String MANIFEST = '{"name": "weed-detector", "version": "1.4.0-mr.42.7", "platform": "trt8.5-sm72-l4t35.3.1"}'

    PipelineHarness publishHarness() {
        PipelineHarness h = harness()
        h.files['work/ci/package/manifest.json'] = MANIFEST
        h.credential('artifactory', [kind: 'usernamePassword', username: 'ci-bot', password: 's3cr3t-pa55'])
        h.credential('artifactory-token', [kind: 'string', secret: 'tok-abcdef-123'])
        h.credential('release-signing-key', [kind: 'file', content: '-----BEGIN PRIVATE KEY-----xyz'])
        return h
    }

    void testPublishBuildsSignsAndPublishesWithCredentialsFromTheShell() {
        PipelineHarness h = publishHarness()
        Map published = h.runOn('jetson', 'modelPublish', [prerelease: 'mr.42.7', registryCredentialsId: 'artifactory',
                                                           signKeyCredentialsId: 'release-signing-key'])
        assert published == [name: 'weed-detector', version: '1.4.0-mr.42.7', platform: 'trt8.5-sm72-l4t35.3.1',
                             channel: 'dev', packageDir: 'work/ci/package']
        assert h.pytoolsCommands() == [
            "pytools 'package' 'build' 'model.yaml' '--workdir' 'work/ci' '--prerelease' 'mr.42.7' " +
                '--sign-key "$MODEL_CICD_SIGN_KEY"',
            "pytools 'publish' 'work/ci/package' '--channel' 'dev'"]
        List<Map> pytoolsCalls = h.callsOf('sh').findAll { it.script.contains('/bin/pytools') }
        assert pytoolsCalls*.credentialVariables == [['MODEL_CICD_SIGN_KEY'], ['ARTIFACTORY_PASSWORD', 'ARTIFACTORY_USER']]
        assert h.callsOf('withCredentials').collect { [it.ids, it.variables] } == [
            [['release-signing-key'], ['MODEL_CICD_SIGN_KEY']],
            [['artifactory'], ['ARTIFACTORY_PASSWORD', 'ARTIFACTORY_USER']]]
        assertNoSecretInAnyCommand(h)
    }

    void testTokenCredentialsBindArtifactoryToken() {
        PipelineHarness h = publishHarness()
        h.runOn('linux', 'modelPublish', [registryCredentialsId: 'artifactory-token', registryCredentialsType: 'string',
                                          channel: 'staging'])
        assert h.pytoolsCommands() == ["pytools 'package' 'build' 'model.yaml' '--workdir' 'work/ci'",
                                       "pytools 'publish' 'work/ci/package' '--channel' 'staging'"]
        assert h.callsOf('sh')[-1].credentialVariables == ['ARTIFACTORY_TOKEN']
        assertNoSecretInAnyCommand(h)
    }

    void testWithoutRegistryCredentialsNothingIsBound() {
        PipelineHarness h = publishHarness()
        h.runOn('linux', 'modelPublish', [:])
        assert h.callsOf('withCredentials') == []
    }

    void testMissingCredentialIdStopsBeforePublishing() {
        PipelineHarness h = publishHarness()
        String message = failureMessage(h) { h.runOn('linux', 'modelPublish', [registryCredentialsId: 'artifactroy']) }
        assert message == "Could not find credentials entry with ID 'artifactroy'"
        assert !h.pytoolsCommands().any { it.contains("'publish'") }
    }

    void testMissingSigningKeyIdStopsBeforeBuildingThePackage() {
        PipelineHarness h = publishHarness()
        String message = failureMessage(h) { h.runOn('linux', 'modelPublish', [signKeyCredentialsId: 'no-such-key']) }
        assert message == "Could not find credentials entry with ID 'no-such-key'"
        assert h.pytoolsCommands() == []
    }

    void testEmptyOrWrongTypeCredentials() {
        PipelineHarness h = publishHarness()
        assert failureMessage(h) { h.runOn('linux', 'modelPublish', [registryCredentialsId: ' ']) } ==
            'modelPublish: registryCredentialsId is empty; give a Jenkins credentials id or leave it unset'
        Map sshType = [registryCredentialsId: 'artifactory', registryCredentialsType: 'ssh']
        assert failureMessage(h) { h.runOn('linux', 'modelPublish', sshType) } ==
            "modelPublish: registryCredentialsType must be 'usernamePassword' or 'string', not 'ssh'"
        assert failureMessage(h) { h.runOn('linux', 'modelPublish', [registryCredentialsId: 'artifactory-token']) } ==
            "Credentials 'artifactory-token' is of type 'string' where 'usernamePassword' was expected"
    }

    void testPromoteMovesAVersionBetweenChannels() {
        PipelineHarness h = publishHarness()
        h.runOn('linux', 'modelPromote', [name: 'weed-detector', version: '1.4.0', to: 'staging',
                                          registryCredentialsId: 'artifactory'])
        assert h.pytoolsCommands() == ["pytools 'promote' 'weed-detector' '1.4.0' '--from' 'dev' '--to' 'staging'"]
        assert h.callsOf('sh')[-1].credentialVariables == ['ARTIFACTORY_PASSWORD', 'ARTIFACTORY_USER']
        assertNoSecretInAnyCommand(h)
    }
}
