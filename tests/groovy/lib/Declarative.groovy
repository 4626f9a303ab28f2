import org.jenkinsci.plugins.workflow.steps.FlowInterruptedException

/**
 * Runs a declarative `pipeline { }` block the way Jenkins' Pipeline: Declarative does, for the
 * directives the library uses: top-level and per-stage `agent` (none / label), `options`
 * (recorded; a stage `timeout` wraps the stage), nested `stages`, `when` (branch, buildingTag,
 * changeRequest, expression, anyOf, allOf, not, beforeAgent), `steps` and `post`.
 * Each stage with a label agent runs inside the harness' `node` after the default `checkout scm`,
 * so workspace rules apply.
 */
class Declarative {
    static final Object NONE = new Object()
    final PipelineHarness h

    static void apply(Closure body, Object dsl) {
        Closure c = (Closure) body.clone()
        c.resolveStrategy = Closure.DELEGATE_FIRST
        c.delegate = dsl
        c.call()
    }

    Declarative(PipelineHarness h) {
        this.h = h
    }

    void run(Closure body) {
        Section top = new Section(name: 'pipeline')
        apply(body, new SectionDsl(top))
        if (top.agent == null) {
            throw new AssertionError('pipeline: a top-level agent directive is required')
        }
        h.calls << [step: 'pipelineOptions', options: top.options]
        Throwable failure = null
        try {
            runStages(top.stages)
        // As Jenkins: any failure runs `post`, then ends the build.
        // groovylint-disable-next-line CatchThrowable
        } catch (Throwable t) {
            failure = t
            h.currentBuild.result = t instanceof FlowInterruptedException ? 'ABORTED' : 'FAILURE'
        }
        h.currentBuild.result = h.currentBuild.result ?: 'SUCCESS'
        runPost(top)
        if (failure) {
            throw failure
        }
    }

    private void runStages(List<Section> stages) {
        for (Section s in stages) {
            runStage(s)
        }
    }

    private void runStage(Section s) {
        if (s.when && s.beforeAgent && !s.when.call()) {
            h.calls << [step: 'stageSkipped', name: s.name, node: h.currentNode]
            return
        }
        Closure body = {
            if (s.when && !s.beforeAgent && !s.when.call()) {
                h.calls << [step: 'stageSkipped', name: s.name, node: h.currentNode]
                return
            }
            h.calls << [step: 'stage', name: s.name, node: h.currentNode]
            Closure work = { s.stages ? runStages(s.stages) : s.steps.call() }
            Map timeout = s.options.find { it.name == 'timeout' }?.args
            if (timeout) {
                h.binding.getVariable('timeout').call(timeout, work)
            } else {
                work()
            }
        }
        if (s.agent instanceof String) {
            // Declarative checks the build's commit out on each stage agent unless skipDefaultCheckout.
            boolean checkout = !s.options.any { it.name == 'skipDefaultCheckout' }
            h.binding.getVariable('node').call(s.agent) {
                if (checkout) {
                    h.binding.getVariable('checkout').call(h.binding.getVariable('scm'))
                }
                body()
            }
        } else {
            body()
        }
    }

    private void runPost(Section s) {
        String result = h.currentBuild.result
        List<String> conditions = ['always', result == 'SUCCESS' ? 'success' : null,
                                   result == 'FAILURE' ? 'failure' : null, result == 'ABORTED' ? 'aborted' : null,
                                   result == 'SUCCESS' ? null : 'unsuccessful', 'cleanup'].findAll()
        for (String c in conditions) {
            s.post[c]?.call()
        }
    }

    /** One `pipeline` or `stage` block. */
    static class Section {
        String name
        Object agent
        Closure when
        boolean beforeAgent
        Closure steps
        List<Section> stages = []
        List<Map> options = []
        Map<String, Closure> post = [:]
    }

    class SectionDsl {
        final Section s

        SectionDsl(Section s) {
            this.s = s
        }

        final Object none = NONE

        void agent(Object spec) {
            if (spec instanceof Closure) {
                AgentDsl a = new AgentDsl()
                apply((Closure) spec, a)
                s.agent = a.agentLabel
            } else {
                s.agent = spec
            }
        }

        void options(Closure body) {
            OptionsDsl o = new OptionsDsl()
            apply(body, o)
            s.options.addAll(o.options)
        }

        void stages(Closure body) {
            apply(body, new StagesDsl(s))
        }

        void steps(Closure body) {
            s.steps = body
        }

        void when(Closure body) {
            WhenDsl w = new WhenDsl()
            apply(body, w)
            s.beforeAgent = w.evaluateBeforeAgent
            s.when = { w.conditions.every { it.call() } }
        }

        void post(Closure body) {
            PostDsl p = new PostDsl()
            apply(body, p)
            s.post = p.blocks
        }
    }

    class StagesDsl {
        final Section parent

        StagesDsl(Section parent) {
            this.parent = parent
        }

        void stage(String name, Closure body) {
            Section child = new Section(name: name)
            apply(body, new SectionDsl(child))
            if (!child.steps && !child.stages) {
                throw new AssertionError("stage '${name}': needs steps or stages")
            }
            parent.stages << child
        }
    }

    static class AgentDsl {
        String agentLabel

        void label(Object value) {
            agentLabel = value?.toString()
        }
    }

    class WhenDsl {
        List<Closure> conditions = []
        boolean evaluateBeforeAgent

        void beforeAgent(boolean value) {
            evaluateBeforeAgent = value
        }

        void branch(String pattern) {
            conditions << { h.env.BRANCH_NAME != null && h.env.BRANCH_NAME ==~ pattern.replace('*', '.*') }
        }

        // Named after the declarative keyword, not a builder.
        // groovylint-disable-next-line BuilderMethodWithSideEffects
        void buildingTag() {
            conditions << { h.env.TAG_NAME != null }
        }

        void changeRequest() {
            conditions << { h.env.CHANGE_ID != null }
        }

        void expression(Closure body) {
            conditions << { body.call() as boolean }
        }

        void anyOf(Closure body) {
            WhenDsl inner = nested(body)
            conditions << { inner.conditions.any { it.call() } }
        }

        void allOf(Closure body) {
            WhenDsl inner = nested(body)
            conditions << { inner.conditions.every { it.call() } }
        }

        void not(Closure body) {
            WhenDsl inner = nested(body)
            conditions << { !inner.conditions.every { it.call() } }
        }

        private WhenDsl nested(Closure body) {
            WhenDsl inner = new WhenDsl()
            apply(body, inner)
            return inner
        }
    }
}

/** `options { }`: each option recorded as [name, args]. */
class OptionsDsl {
    List<Map> options = []

    Object methodMissing(String name, Object args) {
        Object[] a = args as Object[]
        Map entry = [name: name, args: a.length == 1 ? a[0] : (a as List)]
        options << entry
        return entry
    }
}

/** `post { }`: one block per condition. */
class PostDsl {
    Map<String, Closure> blocks = [:]

    Object methodMissing(String name, Object args) {
        return blocks[name] = (Closure) (args as Object[])[0]
    }
}
