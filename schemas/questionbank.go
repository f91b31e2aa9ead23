package schemas

// QuestionBank is trustpulse's built-in question bank, drawn from the
// practice of trust-based, decentralised leadership, and the 5-item
// engagement index. Survey files refer to an item by its id ("bank: autonomy")
// or to the whole index ("bank: engagement-index").
var QuestionBank = []Question{
	{ID: "clear-expectations", Text: "I know what is expected of me and what success looks like.", Dimension: Empowerment, Driver: "clarity"},
	{ID: "autonomy", Text: "I have the freedom to decide how I reach my goals.", Dimension: Empowerment, Driver: "autonomy"},
	{ID: "manager-support", Text: "My manager is available when I need support.", Dimension: Trust, Driver: "support"},
	{ID: "trust-leadership", Text: "I trust the decisions of our leadership.", Dimension: Trust, Driver: "trust-in-leadership"},
	{ID: "transparency", Text: "Leaders explain their decisions and admit their mistakes.", Dimension: Trust, Driver: "transparency"},
	{ID: "speak-up", Text: "It is safe to raise ideas and concerns here.", Dimension: Trust, Driver: "open-communication"},
	{ID: "recognition", Text: "I get recognition when I do good work.", Dimension: Motivation, Driver: "recognition"},
	{ID: "motivation", Text: "My work motivates me to go beyond what is required.", Dimension: Motivation, Driver: "motivation"},
	{ID: "intent-to-stay", Text: "I see myself still working here in two years.", Dimension: Motivation, Driver: "intent-to-stay"},
	{ID: "enps", Text: "How likely are you to recommend this organisation as a place to work?", Dimension: ENPS, Driver: "recommendation"},

	// The engagement index: pride, recommendation, present commitment,
	// future commitment, motivation.
	{ID: "ei-pride", Text: "I am proud to work here.", Dimension: Engagement, Driver: "pride"},
	{ID: "ei-recommend", Text: "I would recommend this organisation as a great place to work.", Dimension: Engagement, Driver: "recommendation"},
	{ID: "ei-present", Text: "I rarely think about looking for a job at another organisation.", Dimension: Engagement, Driver: "present-commitment"},
	{ID: "ei-future", Text: "I see myself still working here in two years' time.", Dimension: Engagement, Driver: "future-commitment"},
	{ID: "ei-motivation", Text: "This organisation motivates me to go beyond what I would in a similar role elsewhere.", Dimension: Engagement, Driver: "motivation"},

	// Free text, shown only to groups of CommentThreshold or more.
	{ID: "comment-better", Text: "What one thing would make working here better?", Dimension: Comment, Optional: true},
}

// EngagementIndex is the name of the bank's 5-item engagement index set.
const EngagementIndex = "engagement-index"

// BankItems returns the bank questions a "bank:" reference names: one item
// by id, or the engagement index set.
func BankItems(ref string) ([]Question, bool) {
	if ref == EngagementIndex {
		var out []Question
		for _, q := range QuestionBank {
			if q.Dimension == Engagement {
				out = append(out, q)
			}
		}
		return out, true
	}
	for _, q := range QuestionBank {
		if q.ID == ref {
			return []Question{q}, true
		}
	}
	return nil, false
}
