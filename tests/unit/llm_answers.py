"""Model answers shared by the llm_json tests: a learner's text, a clean analysis of it, and a clean explanation."""

EXPLAINED = {"title": "Modal verbs", "explanation": "Modals add meaning.", "key_points": ["No -s"],
             "examples": ["She can swim."]}
LEARNER = {"text": "He go to school every day"}
ANALYSED = {"errors": [{"type": "grammar", "text": "He go", "correction": "He goes", "explanation": "Add -s."}],
            "feedback": "Clear.", "strengths": [], "improvement_areas": [], "recommended_tasks": [],
            "cefr_assessment": {"level": "A2", "confidence": 0.6, "rationale": "Simple sentences."}}
