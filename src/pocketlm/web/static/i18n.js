// Labels in English and Brazilian Portuguese, picked from the browser's language.
// t("key") looks a label up; elements with data-i18n="key" (and data-i18n-title, data-i18n-placeholder)
// are filled by applyLabels(). Parameter names (temperature, top_k ...) stay as the API spells them.

const LABELS = {
  en: {
    chat: "Chat", completion: "Completion", compare: "Compare", inspect: "Inspect", translate: "Translate", speak: "Speak", describe: "Describe an image",
    conversations: "Conversations", new_chat: "New chat", export: "Export", import: "Import", delete: "Delete",
    settings: "Settings", system_prompt: "System prompt", system_placeholder: "You are a helpful assistant.",
    sampling: "Sampling", reset: "Reset", probabilities: "Token probabilities",
    probabilities_help: "Ask for logprobs: colour each token by its probability; hover or tap it for the alternatives.",
    send: "Send", stop: "Stop", regenerate: "Regenerate", edit: "Edit", save_send: "Save and send", cancel: "Cancel",
    copy: "Copy", message_placeholder: "Type a message. Enter sends, Shift+Enter adds a line.",
    prompt_placeholder: "Text for the model to continue", generate: "Generate", echo: "Repeat the prompt in the answer (as /generate does)",
    view_text: "Text", view_markdown: "Markdown", view_tokens: "Tokens",
    you: "You", assistant: "Assistant", system: "System",
    tokens_per_s: "tokens/s", prompt_tokens: "prompt", completion_tokens: "completion", first_token: "first token",
    context: "context", of: "of", stopped: "stopped", finish_length: "length limit", finish_stop: "end",
    finish_tool_calls: "called functions",
    api_key: "API key", api_key_prompt: "This server needs an API key (pocketlm serve --api-key).", save: "Save",
    empty_chat: "Start a conversation: type below. The model's chat template turns the messages into its prompt.",
    imported: "Imported {n} conversations.", import_failed: "Not a pocketlm conversations file: {why}",
    alternatives: "Alternatives", probability: "probability", chosen: "chosen",
    server_down: "The server did not answer: {why}", random_seed: "random",
    stop_help: "One stop string per line.", variant: "Answer {i} of {n}",
    json_schema_help: "A JSON schema: the answer is JSON that follows it (response_format). Empty: free text.",
    tools_help: "Chat: functions the model may call, as OpenAI's tools list. Reply to a call with its result.",
    tool_choice_help: "auto: the model calls or answers; required: it calls; none: it answers.",
    not_json: "not JSON", tool_call: "Calls", tool_result: "Result of {name}", tool_reply: "The result of {name}…",
    text: "Text", tokens: "Tokens", attention: "Attention", next_token: "Next token", run: "Run",
    layer: "Layer", head: "Head", before: "Model", after: "After sampling", kept: "tokens kept",
    logit_lens: "Logit lens (top token per layer)",
    source: "From", target: "To", auto: "Detect", translation: "Translation", detected: "detected",
    voice: "Voice", speed: "speed", format: "Format", speak_button: "Speak", download: "Download",
    image: "Image", caption: "Caption", describe_button: "Describe", language: "Language",
    inspect_placeholder: "Text to look inside", speak_placeholder: "Text to speak", translate_placeholder: "Text to translate",
    no_key: "No key", choose_image: "Choose a PNG, JPEG or WebP image",
    talk: "Talk", hold_to_talk: "Hold to talk",
    talk_help: "Hold the button (or Space) while you speak, in English or Portuguese, and let go: your words appear, then the model answers in writing and out loud, in the language you spoke. Nothing leaves this server.",
    listening: "Listening… let go when you are done.", transcribing: "Writing down what you said…", thinking: "Thinking…",
    speaking: "Speaking…", hold_again: "Hold the button to answer.", heard_nothing: "No words were heard: hold the button while you speak.",
    nothing_to_say: "The model wrote nothing to say.", press_play: "Press play to hear the answer.",
    no_microphone: "The microphone could not be opened: {why}",
    model: "Model", loaded: "loaded", not_loaded: "loads on first use", loading: "loading", unloading: "unloading",
    compare_button: "Compare", compare_placeholder: "One prompt for both models. Ctrl+Enter runs it.",
    compare_plain: "Continue the text (no chat template)",
  },
  pt: {
    chat: "Conversa", completion: "Completar", compare: "Comparar", inspect: "Por dentro", translate: "Traduzir", speak: "Falar", describe: "Descrever imagem",
    conversations: "Conversas", new_chat: "Nova conversa", export: "Exportar", import: "Importar", delete: "Apagar",
    settings: "Configurações", system_prompt: "Prompt de sistema", system_placeholder: "Você é um assistente prestativo.",
    sampling: "Amostragem", reset: "Restaurar", probabilities: "Probabilidades dos tokens",
    probabilities_help: "Pede logprobs: cada token colorido pela probabilidade; passe o mouse ou toque para ver as alternativas.",
    send: "Enviar", stop: "Parar", regenerate: "Gerar de novo", edit: "Editar", save_send: "Salvar e enviar", cancel: "Cancelar",
    copy: "Copiar", message_placeholder: "Digite uma mensagem. Enter envia, Shift+Enter quebra a linha.",
    prompt_placeholder: "Texto para o modelo continuar", generate: "Gerar", echo: "Repetir o prompt na resposta (como /generate)",
    view_text: "Texto", view_markdown: "Markdown", view_tokens: "Tokens",
    you: "Você", assistant: "Assistente", system: "Sistema",
    tokens_per_s: "tokens/s", prompt_tokens: "prompt", completion_tokens: "resposta", first_token: "primeiro token",
    context: "contexto", of: "de", stopped: "interrompida", finish_length: "limite de tamanho", finish_stop: "fim",
    finish_tool_calls: "chamou funções",
    api_key: "Chave da API", api_key_prompt: "Este servidor pede uma chave de API (pocketlm serve --api-key).", save: "Salvar",
    empty_chat: "Comece uma conversa: digite abaixo. O modelo de chat do modelo transforma as mensagens no prompt.",
    imported: "{n} conversas importadas.", import_failed: "Não é um arquivo de conversas do pocketlm: {why}",
    alternatives: "Alternativas", probability: "probabilidade", chosen: "escolhido",
    server_down: "O servidor não respondeu: {why}", random_seed: "aleatória",
    stop_help: "Uma sequência de parada por linha.", variant: "Resposta {i} de {n}",
    json_schema_help: "Um JSON schema: a resposta é JSON que o segue (response_format). Vazio: texto livre.",
    tools_help: "Chat: funções que o modelo pode chamar, como a lista tools do OpenAI. Responda a uma chamada com o resultado.",
    tool_choice_help: "auto: o modelo chama ou responde; required: chama; none: responde.",
    not_json: "não é JSON", tool_call: "Chama", tool_result: "Resultado de {name}", tool_reply: "O resultado de {name}…",
    text: "Texto", tokens: "Tokens", attention: "Atenção", next_token: "Próximo token", run: "Executar",
    layer: "Camada", head: "Cabeça", before: "Modelo", after: "Após a amostragem", kept: "tokens mantidos",
    logit_lens: "Logit lens (token mais provável por camada)",
    source: "De", target: "Para", auto: "Detectar", translation: "Tradução", detected: "detectado",
    voice: "Voz", speed: "velocidade", format: "Formato", speak_button: "Falar", download: "Baixar",
    image: "Imagem", caption: "Legenda", describe_button: "Descrever", language: "Idioma",
    inspect_placeholder: "Texto para olhar por dentro", speak_placeholder: "Texto para falar", translate_placeholder: "Texto para traduzir",
    no_key: "Sem chave", choose_image: "Escolha uma imagem PNG, JPEG ou WebP",
    talk: "Conversa por voz", hold_to_talk: "Segure para falar",
    talk_help: "Segure o botão (ou Espaço) enquanto fala, em português ou inglês, e solte: suas palavras aparecem, e o modelo responde por escrito e em voz alta, no idioma em que você falou. Nada sai deste servidor.",
    listening: "Ouvindo… solte quando terminar.", transcribing: "Escrevendo o que você disse…", thinking: "Pensando…",
    speaking: "Falando…", hold_again: "Segure o botão para responder.", heard_nothing: "Nenhuma palavra foi ouvida: segure o botão enquanto fala.",
    nothing_to_say: "O modelo não escreveu nada para dizer.", press_play: "Aperte o play para ouvir a resposta.",
    no_microphone: "Não foi possível abrir o microfone: {why}",
    model: "Modelo", loaded: "carregado", not_loaded: "carrega no primeiro uso", loading: "carregando", unloading: "descarregando",
    compare_button: "Comparar", compare_placeholder: "Um prompt para os dois modelos. Ctrl+Enter executa.",
    compare_plain: "Continuar o texto (sem modelo de chat)",
  },
};

export const lang = (navigator.languages?.[0] || navigator.language || "en").toLowerCase().startsWith("pt") ? "pt" : "en";

export function t(key, values = {}) {
  const text = LABELS[lang][key] ?? LABELS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

export function applyLabels(root = document) {
  document.documentElement.lang = lang === "pt" ? "pt-BR" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
}
